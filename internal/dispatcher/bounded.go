package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Every AWS call the dispatcher makes has a time limit of its own, below
// what is left of the invocation (issue 24): one stalled call (a DynamoDB
// read that never answers) then ends as a clear error that the handler
// logs and returns, so Lambda retries the event, instead of eating the
// whole invocation and ending as a Lambda timeout with nothing said.
// RunTask keeps its own bound and retries (task.go); lifecycle events have
// theirs (events.go).

// defaultCallLimit bounds one AWS call, the SDK's own retries included.
const defaultCallLimit = 10 * time.Second

// callBound is the context of one AWS call: at most d.callLimit, and at
// most what is left of the invocation minus a margin to report the failure
// (d.reserve, or half of what is left when less remains).
func (d *Dispatcher) callBound(ctx context.Context) (context.Context, context.CancelFunc, time.Duration) {
	limit := d.callLimit
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		limit = min(limit, left-min(d.reserve, left/2))
	}
	limit = max(limit, time.Millisecond)
	c, cancel := context.WithTimeout(ctx, limit)
	return c, cancel, limit
}

// bounded makes one AWS call under callBound, and names the call and the
// bound when the bound, not the caller, ended it.
func bounded[T any](d *Dispatcher, ctx context.Context, what string, call func(context.Context) (T, error)) (T, error) {
	c, cancel, limit := d.callBound(ctx)
	defer cancel()
	out, err := call(c)
	if err != nil && ctx.Err() == nil && errors.Is(c.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s gave no answer within %s (the dispatcher's limit for one AWS call, kept below the invocation's remaining time); the event will be retried: %w",
			what, limit.Round(time.Millisecond), err)
	}
	return out, err
}

type boundedDynamo struct {
	d   *Dispatcher
	api DynamoAPI
}

func (b boundedDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return bounded(b.d, ctx, "DynamoDB PutItem", func(c context.Context) (*dynamodb.PutItemOutput, error) { return b.api.PutItem(c, in, o...) })
}

func (b boundedDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return bounded(b.d, ctx, "DynamoDB UpdateItem", func(c context.Context) (*dynamodb.UpdateItemOutput, error) { return b.api.UpdateItem(c, in, o...) })
}

func (b boundedDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return bounded(b.d, ctx, "DynamoDB GetItem", func(c context.Context) (*dynamodb.GetItemOutput, error) { return b.api.GetItem(c, in, o...) })
}

type boundedSQS struct {
	d   *Dispatcher
	api SQSAPI
}

func (b boundedSQS) CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, o ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	return bounded(b.d, ctx, "SQS CreateQueue", func(c context.Context) (*sqs.CreateQueueOutput, error) { return b.api.CreateQueue(c, in, o...) })
}

func (b boundedSQS) GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, o ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return bounded(b.d, ctx, "SQS GetQueueUrl", func(c context.Context) (*sqs.GetQueueUrlOutput, error) { return b.api.GetQueueUrl(c, in, o...) })
}

func (b boundedSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, o ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return bounded(b.d, ctx, "SQS SendMessage", func(c context.Context) (*sqs.SendMessageOutput, error) { return b.api.SendMessage(c, in, o...) })
}

func (b boundedSQS) DeleteQueue(ctx context.Context, in *sqs.DeleteQueueInput, o ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error) {
	return bounded(b.d, ctx, "SQS DeleteQueue", func(c context.Context) (*sqs.DeleteQueueOutput, error) { return b.api.DeleteQueue(c, in, o...) })
}

func (b boundedSQS) ListQueues(ctx context.Context, in *sqs.ListQueuesInput, o ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error) {
	return bounded(b.d, ctx, "SQS ListQueues", func(c context.Context) (*sqs.ListQueuesOutput, error) { return b.api.ListQueues(c, in, o...) })
}

type boundedECS struct {
	d   *Dispatcher
	api ECSAPI
}

// RunTask is bounded and retried by runTask (task.go).
func (b boundedECS) RunTask(ctx context.Context, in *ecs.RunTaskInput, o ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	return b.api.RunTask(ctx, in, o...)
}

func (b boundedECS) StopTask(ctx context.Context, in *ecs.StopTaskInput, o ...func(*ecs.Options)) (*ecs.StopTaskOutput, error) {
	return bounded(b.d, ctx, "ECS StopTask", func(c context.Context) (*ecs.StopTaskOutput, error) { return b.api.StopTask(c, in, o...) })
}

func (b boundedECS) ListTasks(ctx context.Context, in *ecs.ListTasksInput, o ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	return bounded(b.d, ctx, "ECS ListTasks", func(c context.Context) (*ecs.ListTasksOutput, error) { return b.api.ListTasks(c, in, o...) })
}

type boundedLogs struct {
	d   *Dispatcher
	api LogsAPI
}

func (b boundedLogs) GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, o ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	return bounded(b.d, ctx, "CloudWatch Logs GetLogEvents", func(c context.Context) (*cloudwatchlogs.GetLogEventsOutput, error) {
		return b.api.GetLogEvents(c, in, o...)
	})
}
