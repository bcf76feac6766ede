package trigger

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// rxEvent is what the receiver tells the watch loop.
type rxEvent struct {
	queueURL string    // the run queue was found
	msgs     []decoded // a batch of messages, decoded (deleted after the loop takes them)
	waitErr  error     // a retryable error while waiting for the queue or its policy
	fatal    error     // an error that survived the SDK's retries
}

// decoded is one message's records, or why it is not valid.
type decoded struct {
	recs []protocol.Record
	err  error
}

// receiver finds the run queue and long-polls it, handing each batch to the
// watch loop and then deleting it. It retries "queue does not exist" and
// "access denied" (the dispatcher creates the queue on receiving the
// request, and a new queue policy takes up to a minute to apply); the watch
// loop's start timeout decides when to give up.
type receiver struct {
	sqs       sqsAPI
	queueName string
	owner     string
	wait      int32         // long-poll seconds
	retry     time.Duration // longest pause between retries while the queue or its policy is not there yet
	now       func() time.Time
}

func (r *receiver) run(ctx context.Context, out chan<- rxEvent) {
	send := func(ev rxEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// The queue usually appears within a second of the request (the
	// dispatcher creates it first thing), while a new queue policy can take a
	// minute: start looking again quickly, then back off to r.retry.
	delay := min(100*time.Millisecond, r.retry)
	pause := func() bool {
		select {
		case <-time.After(delay):
			delay = min(2*delay, r.retry)
			return true
		case <-ctx.Done():
			return false
		}
	}
	var url string
	for url == "" {
		o, err := r.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(r.queueName), QueueOwnerAWSAccountId: aws.String(r.owner)})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			url = aws.ToString(o.QueueUrl)
		case isQueueMissing(err) || isAccessDenied(err):
			if !send(rxEvent{waitErr: err}) || !pause() {
				return
			}
		default:
			send(rxEvent{fatal: err})
			return
		}
	}
	if !send(rxEvent{queueURL: url}) {
		return
	}
	for {
		o, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                aws.String(url),
			MaxNumberOfMessages:     10,
			WaitTimeSeconds:         r.wait,
			VisibilityTimeout:       int32(receiveVisibility / time.Second),
			ReceiveRequestAttemptId: aws.String(protocol.NewRunID(r.now())),
		})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
		case isAccessDenied(err) || isQueueMissing(err):
			if !send(rxEvent{waitErr: err}) || !pause() {
				return
			}
			continue
		default:
			send(rxEvent{fatal: err})
			return
		}
		if len(o.Messages) == 0 {
			continue
		}
		// Decoding here, in the receiver's goroutine, overlaps it with the
		// watch loop printing the previous batch.
		batch := make([]decoded, len(o.Messages))
		for i, m := range o.Messages {
			batch[i].recs, batch[i].err = protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
		}
		if !send(rxEvent{msgs: batch}) {
			return
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, 0, len(o.Messages))
		for i, m := range o.Messages {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(string(rune('a' + i))), ReceiptHandle: m.ReceiptHandle})
		}
		// A failed delete only means the message comes back; the sequencer
		// drops it then.
		_, _ = r.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	}
}

// receiveVisibility hides received messages from other receives until they
// are deleted. It bounds how late a message comes back when the answer to
// the receive that took it was lost on the way: short, because the trigger
// waits for such messages (see watch.stopDeadline); long enough to print and
// delete a batch. A message that does come back twice is dropped by sequence.
const receiveVisibility = 10 * time.Second
