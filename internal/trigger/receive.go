package trigger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// rxEvent is what the receiver tells the watch loop.
type rxEvent struct {
	queueURL string    // the run queue was found
	msgs     []decoded // a batch of messages, decoded (deleted after the loop takes them)
	foreign  error     // the queue holds a message of another run: nothing of the batch was taken
	waitErr  error     // a retryable error while waiting for the queue or its policy
	fatal    error     // an error that survived the SDK's retries
}

// decoded is one message's records, or why it is not valid.
type decoded struct {
	recs []protocol.Record
	err  error
}

// receiver finds the run queue and long-polls it, handing each batch to the
// watch loop and then deleting it. The run's queue may be a spare made
// ahead of time and named otherwise (issue 26): the dispatcher writes the
// run pointer in the broker's view table, which the receiver reads first;
// for a broker of the previous version, which writes no pointer, it also
// looks the queue up by the run's name; a queue found so is followed only
// until the pointer names another (the dispatcher writes the pointer before
// it sends anything to a run's queue, and the run-named queue of a run
// given a spare is not the broker's: TestAttackQueueMadeUnderTheRunsName…).
// It retries "no pointer yet",
// "queue does not exist" and "access denied" (the dispatcher may not have
// handled the request yet, and a queue created for the run has a policy
// that takes up to a minute to apply); the watch loop's start timeout
// decides when to give up.
type receiver struct {
	sqs       sqsAPI
	view      brokerview.GetAPI // nil: by name only
	viewTable string            // the view table's ARN
	runID     string
	queueName string // the run-named queue of a broker of the previous version
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
	// The pointer usually appears within a fraction of a second of the
	// request (the dispatcher writes it before it starts the task), while a
	// new queue policy can take a minute: look at once, again after 50 ms,
	// then back off to r.retry.
	delay := min(50*time.Millisecond, r.retry)
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
	byName := false // found by the run's name, not through a pointer
	for url == "" {
		u, perr := r.pointer(ctx)
		if u != "" {
			url = u
			break
		}
		o, err := r.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(r.queueName), QueueOwnerAWSAccountId: aws.String(r.owner)})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			url, byName = aws.ToString(o.QueueUrl), true
		case isQueueMissing(err) || isAccessDenied(err):
			if perr != nil {
				err = perr // what stands between the trigger and a spare queue
			}
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
	handed := false // a batch of the queue went to the watch loop
	for {
		o, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                aws.String(url),
			MaxNumberOfMessages:     10,
			WaitTimeSeconds:         r.wait,
			VisibilityTimeout:       int32(receiveVisibility / time.Second),
			ReceiveRequestAttemptId: aws.String(protocol.NewRunID(r.now())),
			// Every record of a run is sent in its message group, the run
			// id (broker and runner alike): a message of another group is
			// not this run's, whatever queue it was found in.
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId},
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
		if byName {
			// The queue named after the run may be anyone's who may create
			// queues under the broker's names: a broker that writes
			// pointers may have given the run a spare and never made it.
			// Its pointer comes before anything is sent to the run's
			// queue, so look at it again until it names this queue.
			u, perr := r.pointer(ctx)
			switch {
			case perr != nil && isAccessDenied(perr):
				// This principal may not read pointers (a CI role of
				// another account without GetItem on the view table):
				// asking again on every receive would only double the
				// calls. The residual is ARCHITECTURE.md's.
				r.view, byName = nil, false
			case u == url:
				byName = false
			case u != "" && handed:
				send(rxEvent{foreign: fmt.Errorf("the queue named after run %s (%s), read before the broker pointed the run elsewhere, is not the run's: the run pointer names %s. What was printed from it may be forged; ask the broker's operators who made that queue", r.runID, short(url, 200), short(u, 200))})
				return
			case u != "":
				url, byName = u, false // nothing taken from the other queue
				if !send(rxEvent{queueURL: url}) {
					return
				}
				continue
			}
		}
		if len(o.Messages) == 0 {
			continue
		}
		if err := r.sameRun(o.Messages); err != nil {
			// Nothing is printed or deleted: the queue the pointer named
			// is not (only) this run's, and its records are not ours to
			// take from whoever they belong to.
			send(rxEvent{foreign: err})
			return
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
		handed = true
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, 0, len(o.Messages))
		for i, m := range o.Messages {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(string(rune('a' + i))), ReceiptHandle: m.ReceiptHandle})
		}
		// A failed delete only means the message comes back; the sequencer
		// drops it then.
		_, _ = r.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	}
}

// sameRun checks that every message is of the run's message group. Before
// spare queues the queue's name bound it to the run; now the run pointer
// does, and a pointer that named another run's queue (forged, or a
// broker's fault) must not hand the trigger that run's records as its own.
func (r *receiver) sameRun(msgs []sqstypes.Message) error {
	for _, m := range msgs {
		if g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]; g != r.runID {
			return fmt.Errorf("the queue the run pointer names holds a message (id %s) of message group %q, not of run %s: it is not this run's queue alone, so the pointer (run#%s in the view table %s) may be forged; nothing of it was printed or taken. Ask the broker's operators to check the view table and the queue",
				aws.ToString(m.MessageId), g, r.runID, r.runID, r.viewTable)
		}
	}
	return nil
}

// receiveVisibility hides received messages from other receives until they
// are deleted. It bounds how late a message comes back when the answer to
// the receive that took it was lost on the way: short, because the trigger
// waits for such messages (see watch.stopDeadline); long enough to print and
// delete a batch. A message that does come back twice is dropped by sequence.
const receiveVisibility = 10 * time.Second

// pointerError is a failed read of the run pointer: the view table says
// where the run's queue is, and a principal that may not read it there
// (another account's principal without dynamodb:GetItem on the table in
// its own IAM policy) finds only queues named after the run.
type pointerError struct {
	table string
	err   error
}

func (e *pointerError) Error() string {
	return "reading the run pointer in the broker's view table " + e.table + ": " + e.err.Error()
}
func (e *pointerError) Unwrap() error { return e.err }

// pointer reads the run pointer: the queue URL, or "" and why not (nil
// when the dispatcher has not written it yet). A view table that does not
// exist (a broker older than the published view) is no error: the name
// lookup is the way then.
func (r *receiver) pointer(ctx context.Context) (string, error) {
	if r.view == nil {
		return "", nil
	}
	u, ok, err := brokerview.GetRunPointer(ctx, r.view, r.viewTable, r.runID)
	switch {
	case err != nil && apiCode(err) == "ResourceNotFoundException":
		r.view = nil
		return "", nil
	case err != nil:
		return "", &pointerError{r.viewTable, err}
	case !ok:
		return "", nil
	}
	// Only the dispatcher may write a pointer (the stack's grants); even
	// so, the trigger follows none out of the broker's run queues: the
	// queue's name must be a run queue's, in the topic's account.
	parts := strings.Split(u, "/")
	if len(parts) < 2 || parts[len(parts)-2] != r.owner || !r.isRunQueueName(parts[len(parts)-1]) {
		return "", &pointerError{r.viewTable, fmt.Errorf("it names %q, which is not a run queue of this broker in account %s", short(u, 200), r.owner)}
	}
	return u, nil
}

// isRunQueueName reports whether name is one of the broker's run queues:
// protocol.QueueName of the broker and an id in the run id format.
func (r *receiver) isRunQueueName(name string) bool {
	prefix := strings.TrimSuffix(r.queueName, r.runID+".fifo")
	id, ok := strings.CutPrefix(name, prefix)
	id, fifo := strings.CutSuffix(id, ".fifo")
	return ok && fifo && protocol.ValidateRunID(id) == nil
}
