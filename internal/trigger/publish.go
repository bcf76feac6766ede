package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// newRequest builds a request of kind for runID, valid from now for ttl.
func newRequest(kind protocol.Kind, runID string, now time.Time, ttl time.Duration) *protocol.Request {
	now = now.UTC().Truncate(time.Millisecond)
	return &protocol.Request{V: protocol.RequestVersion, Kind: kind, RunID: runID, RequestedAt: now, ExpiresAt: now.Add(ttl)}
}

func encodeRequest(r *protocol.Request) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding %s request: %w", r.Kind, err)
	}
	if len(b) > protocol.MaxRequestBytes {
		return nil, exitcode.Errorf(exitcode.Usage, "the run request is %d bytes, over SNS's %d-byte limit: shorten the parameters", len(b), protocol.MaxRequestBytes)
	}
	return b, nil
}

// publish signs a request's proof of identity and sends the request to the
// broker topic. Errors read as one sentence naming the principal when access
// is denied.
func publish(ctx context.Context, c clients, topic Topic, r *protocol.Request) error {
	if err := r.Validate(); err != nil {
		return exitcode.New(exitcode.Usage, err)
	}
	if err := signRequest(ctx, c, topic, r); err != nil {
		return err
	}
	body, err := encodeRequest(r)
	if err != nil {
		return err
	}
	_, err = c.sns.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic.ARN), Message: aws.String(string(body))})
	if err != nil {
		if isTopicMissing(err) {
			return exitcode.Errorf(exitcode.Usage, "topic %s does not exist in account %s, region %s (SNS: %s): check the topic ARN (its name, account and region) in --topic-arn, DEPLOY_TRIGGER_TOPIC_ARN or the environment (the stack's TopicArn output)",
				topic.Name, topic.Account, topic.Region, short(apiMessage(err), 120))
		}
		return describeAWSError(ctx, c, err, fmt.Sprintf("publishing the %s request to %s", r.Kind, topic.ARN), "sns:Publish on the topic (and kms:GenerateDataKey on its key)")
	}
	return nil
}

// describeAWSError turns an AWS error into one clear sentence with the
// broker exit code.
func describeAWSError(ctx context.Context, c clients, err error, doing, needs string) error {
	var mfa *mfaError
	switch {
	case errors.As(err, &mfa):
		return mfa.exit()
	case isExpiredCredentials(err):
		return exitcode.Errorf(exitcode.Broker, "%s failed: your AWS credentials have expired; refresh them (e.g. aws sso login, or a new CI session) and try again", doing)
	case isInvalidCredentials(err):
		return exitcode.Errorf(exitcode.Broker, "%s failed: AWS does not recognise these credentials (%s); check the access key, profile or role", doing, apiCode(err))
	case isNoCredentials(err):
		return exitcode.Errorf(exitcode.Broker, "%s failed: no AWS credentials were found; set AWS_PROFILE or --profile, run aws sso login, or give the CI job a role", doing)
	case isAccessDenied(err):
		who := "the caller"
		if id, ierr := callerIdentity(ctx, c); ierr == nil {
			who = id
		}
		return exitcode.Errorf(exitcode.Broker, "%s failed: access denied for %s, which needs %s; ask the broker's owners to trust this principal (%s)", doing, who, needs, short(apiMessage(err), 200))
	case ctx.Err() != nil:
		return exitcode.Errorf(exitcode.Broker, "%s was interrupted: %w", doing, ctx.Err())
	}
	if uerr := unreachableError(err, c.stsEndpoint); uerr != nil {
		return exitcode.Errorf(exitcode.Broker, "%s failed: %w", doing, uerr)
	}
	return exitcode.Errorf(exitcode.Broker, "%s failed: %w", doing, err)
}

// twoAttempts bounds an sts:GetCallerIdentity to two attempts: it needs no
// permission and is rarely throttled, so a failure is worth saying at once
// rather than after the SDK's retries (seconds of silence).
func twoAttempts(o *sts.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 2) }

// callerIdentity is the ARN of the principal the credentials belong to.
func callerIdentity(ctx context.Context, c clients) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, twoAttempts)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.Arn), nil
}
