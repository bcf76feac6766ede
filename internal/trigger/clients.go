package trigger

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
)

// The narrow slices of the AWS clients the trigger uses.
type (
	snsAPI interface {
		Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
	}
	sqsAPI interface {
		GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
		ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
		DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	}
	stsAPI interface {
		GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, opts ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
	}
)

// clients are the AWS clients of one invocation, and what signs its
// requests' proofs of identity: the same credentials it publishes with, and
// the STS endpoint override when one is configured (AWS_ENDPOINT_URL_STS or
// AWS_ENDPOINT_URL: local mode), else none, so that proofs name the
// topic region's regional STS endpoint.
type clients struct {
	sns snsAPI
	sqs sqsAPI
	sts stsAPI
	// view reads the broker's published view (discovery.go): GetItem only.
	view brokerview.GetAPI

	cfg         aws.Config // what they were made from (discovery_slots.go reads the history with it)
	creds       aws.CredentialsProvider
	stsEndpoint string
}

func newClients(cfg aws.Config) clients {
	return clients{sns: sns.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), sts: sts.NewFromConfig(cfg),
		view: dynamodb.NewFromConfig(cfg), cfg: cfg, creds: cfg.Credentials, stsEndpoint: aws.ToString(cfg.BaseEndpoint)}
}
