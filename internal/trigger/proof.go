package trigger

import (
	"context"
	"fmt"
	"net/http"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Every request deploy-trigger publishes carries a proof of identity
// (package identity): an sts:GetCallerIdentity request signed, not sent,
// with the credentials it publishes with, bound to the broker topic and to
// every other field of the request. The dispatcher sends it to STS and
// learns who asked; a proof it cannot verify gets no answer at all, so
// deploy-trigger checks here whatever it can before publishing.

// maxClockSkew is how far this machine's clock may be from AWS's before
// deploy-trigger refuses to publish: the dispatcher refuses a proof signed
// more than 5 minutes in its future, and the request's own clock_skew
// tolerance is 2 minutes by default.
const maxClockSkew = 2 * time.Minute

// signRequest sets r.Proof, then checks the proof as the dispatcher will,
// offline: shape, endpoint, credential scope, binding, time.
func signRequest(ctx context.Context, c clients, topic Topic, r *protocol.Request) error {
	if c.creds == nil {
		return exitcode.Errorf(exitcode.Broker, "signing the %s request's proof of identity: no AWS credentials were found; set AWS_PROFILE or --profile, run aws sso login, or give the CI job a role", r.Kind)
	}
	if err := (identity.RequestSigner{Credentials: c.creds, Topic: topic.ARN, Endpoint: c.stsEndpoint}).Sign(ctx, r); err != nil {
		if mfa := mfaInterrupted(err); mfa != nil {
			return exitcode.Errorf(exitcode.Safety, "%w; nothing was published", mfa)
		}
		if cerr := credentialsError(ctx, c, err, fmt.Sprintf("signing the %s request's proof of identity", r.Kind)); cerr != nil {
			return cerr
		}
		return exitcode.Errorf(exitcode.Broker, "signing the %s request's proof of identity: %v", r.Kind, err)
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{Partition: topic.Partition, Region: topic.Region, Endpoint: c.stsEndpoint})
	if err != nil {
		return exitcode.Errorf(exitcode.Usage, "the broker topic %s is in a partition or region whose STS endpoint deploy-trigger cannot sign for: %v", topic.ARN, err)
	}
	proof, exp, err := identity.RequestProof(r, topic.ARN)
	if err == nil {
		_, err = v.Check(proof, exp)
	}
	if err != nil {
		return exitcode.Errorf(exitcode.Usage, "the %s request's proof of identity would be refused by the broker: %v", r.Kind, err)
	}
	return nil
}

// preflight asks STS who these credentials are (GetCallerIdentity needs no
// permission) and compares this machine's clock with the Date of STS's
// answer: a proof signed by a clock far off is refused by the dispatcher
// without an answer. It returns the caller's ARN. Being the first call, it
// fails fast (two attempts) where publishing cannot work either, in one
// line naming the cause and the fix (firstCallError): no, expired or
// unrecognised credentials, an MFA code that cannot be had, an endpoint
// nothing answers at or a host that does not resolve; an MFA prompt stopped
// by Ctrl-C stops the run (248). Other failures (a slow STS) are left to
// publishing.
func preflight(ctx context.Context, c clients, now func() time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sent := now()
	out, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, twoAttempts)
	if mfa := mfaInterrupted(err); mfa != nil {
		return "", exitcode.Errorf(exitcode.Safety, "%w; nothing was published", mfa)
	}
	if err != nil {
		return "", firstCallError(ctx, c, err)
	}
	if out == nil {
		return "", nil
	}
	arn := ""
	if out.Arn != nil {
		arn = *out.Arn
	}
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok && raw != nil {
		if date, perr := http.ParseTime(raw.Header.Get("Date")); perr == nil {
			local := sent.Add(now().Sub(sent) / 2)
			if skew := local.Sub(date); skew > maxClockSkew+time.Second || skew < -maxClockSkew-time.Second {
				return arn, exitcode.Errorf(exitcode.Usage, "this machine's clock is %s off from AWS's (STS says %s): the broker would refuse the request's proof of identity without answering; fix the clock (NTP) and try again",
					skew.Round(time.Second), date.UTC().Format(time.RFC3339))
			}
		}
	}
	return arn, nil
}

// noQueueReason explains a run queue that never appeared.
func noQueueReason(runID string, wait time.Duration, topic Topic, signer string) string {
	who := "these credentials"
	if signer != "" {
		who = signer
	}
	return fmt.Sprintf("no run queue appeared for run %s within %s: the broker did not answer. Likely causes: the broker refused the request's proof of identity "+
		"(%s is not among its trusted principals, this machine's clock is off, or the topic %s is not the broker's own topic in its region and partition); "+
		"the broker is older than this deploy-trigger (it refuses request version %d without answering); or the dispatcher is failing or not subscribed to the topic. "+
		"The broker's audit log says which (decision \"refused\" or \"malformed\" for run %s)", runID, wait, who, topic.ARN, protocol.RequestVersion, runID)
}
