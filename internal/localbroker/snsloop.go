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
	var env snsEnvelope
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil || env.Type != "Notification" {
		l.log.Warn("SNS loop: dropping a message that is not an SNS notification")
		l.delete(ctx, m)
		return
	}
	ev := events.SNSEvent{Records: []events.SNSEventRecord{{
		EventVersion: "1.0", EventSource: "aws:sns", EventSubscriptionArn: l.subARN,
		SNS: events.SNSEntity{
			Type: env.Type, MessageID: env.MessageID, TopicArn: env.TopicArn, Subject: env.Subject,
			Message: env.Message, Timestamp: env.Timestamp, SignatureVersion: env.SignatureVersion,
			Signature: env.Signature, SigningCertURL: env.SigningCertURL, UnsubscribeURL: env.UnsubscribeURL,
		},
	}}}
	payload, err := json.Marshal(ev)
	if err != nil {
		l.log.Error("SNS loop: encoding the Lambda event", "error", err.Error())
		return
	}
	if err := l.invoke(ctx, payload); err != nil {
		l.log.Warn("SNS loop: handler failed; the message will be retried", "error", err.Error())
		return
	}
	l.delete(ctx, m)
}

func (l *snsLoop) delete(ctx context.Context, m sqstypes.Message) {
	if _, err := l.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(l.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil && ctx.Err() == nil {
		l.log.Warn("SNS loop: delete failed", "error", err.Error())
	}
}
