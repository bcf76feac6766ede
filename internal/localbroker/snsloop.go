package localbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// snsEnvelope is what SNS delivers to a subscribed SQS queue.
type snsEnvelope struct {
	Type             string                    `json:"Type"`
	MessageID        string                    `json:"MessageId"`
	TopicArn         string                    `json:"TopicArn"`
	Subject          string                    `json:"Subject"`
	Message          string                    `json:"Message"`
	Timestamp        time.Time                 `json:"Timestamp"`
	SignatureVersion string                    `json:"SignatureVersion"`
	Signature        string                    `json:"Signature"`
	SigningCertURL   string                    `json:"SigningCertURL"`
	UnsubscribeURL   string                    `json:"UnsubscribeURL"`
	MessageAttrs     map[string]map[string]any `json:"MessageAttributes"`
}

// snsLoop stands in for the SNS→Lambda subscription.
type snsLoop struct {
	sqs      *sqs.Client
	queueURL string
	subARN   string
	invoke   invoker
	log      *slog.Logger
}

// subscribe creates the loop's queue and subscribes it to the topic.
func subscribe(ctx context.Context, awsCfg aws.Config, topicARN, name string) (queueURL, subARN string, err error) {
	sq := sqs.NewFromConfig(awsCfg)
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		return "", "", fmt.Errorf("creating the SNS loop queue: %w", err)
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", "", fmt.Errorf("reading the SNS loop queue ARN: %w", err)
	}
	sub, err := sns.NewFromConfig(awsCfg).Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: aws.String(topicARN), Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]),
	})
	if err != nil {
		return "", "", fmt.Errorf("subscribing the SNS loop queue to the topic: %w", err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(sub.SubscriptionArn), nil
}

// run feeds every SNS notification to the handler until ctx ends. A message
// whose invocation fails stays on the queue and is retried after its
// visibility timeout, as Lambda retries an asynchronous invocation.
func (l *snsLoop) run(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := l.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(l.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 10,
		})
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("SNS loop: receive failed", "error", err.Error())
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		var wg sync.WaitGroup
		for _, m := range out.Messages {
			wg.Add(1)
			go func(m sqstypes.Message) {
				defer wg.Done()
				l.deliver(ctx, m)
			}(m)
		}
		wg.Wait()
	}
}

func (l *snsLoop) deliver(ctx context.Context, m sqstypes.Message) {
	payload, err := lambdaSNSEvent([]byte(aws.ToString(m.Body)), l.subARN)
	if err != nil {
		l.log.Warn("SNS loop: dropping a message that is not an SNS notification", "error", err.Error())
		l.delete(ctx, m)
		return
	}
	if err := l.invoke(ctx, payload); err != nil {
		l.log.Warn("SNS loop: handler failed; the message will be retried", "error", err.Error())
		return
	}
	l.delete(ctx, m)
}

// maxEnvelopeBytes bounds an SNS envelope: an SQS message is at most 1 MiB.
const maxEnvelopeBytes = 1 << 20

// lambdaSNSEvent turns the SNS envelope SNS delivers to a subscribed SQS
// queue into the Lambda SNS event SNS would have invoked the function with.
// The envelope is AWS's own format, which AWS may extend, so unknown fields
// are ignored; its size and type are checked.
func lambdaSNSEvent(body []byte, subARN string) ([]byte, error) {
	if len(body) > maxEnvelopeBytes {
		return nil, fmt.Errorf("SNS envelope is %d bytes, over %d", len(body), maxEnvelopeBytes)
	}
	var env snsEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("SNS envelope is not valid JSON: %w", err)
	}
	if env.Type != "Notification" {
		return nil, fmt.Errorf("SNS envelope has type %q, not Notification", env.Type)
	}
	ev := events.SNSEvent{Records: []events.SNSEventRecord{{
		EventVersion: "1.0", EventSource: "aws:sns", EventSubscriptionArn: subARN,
		SNS: events.SNSEntity{
			Type: env.Type, MessageID: env.MessageID, TopicArn: env.TopicArn, Subject: env.Subject,
			Message: env.Message, Timestamp: env.Timestamp, SignatureVersion: env.SignatureVersion,
			Signature: env.Signature, SigningCertURL: env.SigningCertURL, UnsubscribeURL: env.UnsubscribeURL,
		},
	}}}
	return json.Marshal(ev)
}

func (l *snsLoop) delete(ctx context.Context, m sqstypes.Message) {
	if _, err := l.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(l.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil && ctx.Err() == nil {
		l.log.Warn("SNS loop: delete failed", "error", err.Error())
	}
}
