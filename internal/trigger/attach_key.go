package trigger

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/identity"
)

// Finding a run by its idempotency key (attach --key, logs --key). Keys
// are predictable by design (jenkins-<job>-<build>), so a key alone names
// nobody's run in particular: the run is the newest of the caller's own
// runs (its verified owner: the role of an assumed role, whatever the
// session; the user) of the named job with that key (issue 24). The broker
// also refuses a key another owner used first (key-in-use); runs from
// before that rule may still share a key, and are never followed here.

// callerOwner asks STS who these credentials are and returns their owner
// (identity.OwnerOfARN) and ARN.
func callerOwner(ctx context.Context, c stsAPI) (owner, arn string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if mfa := mfaInterrupted(err); mfa != nil {
		return "", "", mfa.exit()
	}
	if err != nil || aws.ToString(out.Arn) == "" {
		return "", "", exitcode.Errorf(exitcode.Broker, "--key finds only your own runs, and asking STS who you are (sts:GetCallerIdentity, which needs no permission) failed: %v; check your AWS credentials, or attach by run id", err)
	}
	arn = aws.ToString(out.Arn)
	return identity.OwnerOfARN(arn), arn, nil
}

// runByKey returns the run id of the newest run of job with key, between
// from and to, requested by owner (who is callerARN).
func runByKey(ctx context.Context, h historyReader, job, key, owner, callerARN string, from, to time.Time) (string, error) {
	runs, err := h.list(ctx, &runsCLI{Job: job, Key: key}, from, to)
	if err != nil {
		return "", err
	}
	for _, r := range runs { // newest first
		if r.RequestedBy != "" && identity.OwnerOfARN(r.RequestedBy) == owner {
			return r.RunID, nil
		}
	}
	since := to.Sub(from).Round(time.Second)
	if len(runs) > 0 {
		return "", exitcode.Errorf(exitcode.Rejected, "no run of job %s with idempotency key %q in the last %s was requested by you (%s): %d run(s) with that key are another principal's, and --key follows only your own; attach RUN_ID to follow another's run",
			job, key, since, callerARN, len(runs))
	}
	return "", exitcode.Errorf(exitcode.Rejected, "no run of job %s with idempotency key %q in the last %s of the run ledger", job, key, since)
}
