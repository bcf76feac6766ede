package trigger

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Security review (spare queues, second pass): a broker that writes run
// pointers gives a run a spare queue named otherwise, so the queue named
// after the run is never made by the dispatcher; the receiver looks it up
// by name while the pointer is not there yet (for a broker of the previous
// version). A principal with sqs:CreateQueue and SendMessage on the
// broker's queue names (a same-account role with sqs:*; jobs are denied)
// makes that queue as soon as the run id is printed, and the trigger, which
// found it before the dispatcher wrote the pointer, kept reading it for the
// whole run: records it plants in the run's message group (any sender
// chooses the group) were printed as the run's, exit code and outputs
// included, while the real run's records went unread in its spare. The
// dispatcher writes the pointer before it sends anything to a run's queue,
// so once the queue found by name yields anything (or nothing) the receiver
// must look at the pointer again and follow it when it names another
// queue. What is proven: the receiver against moto (queues, the view
// table); the order of the dispatcher's writes is the dispatcher's tests'
// (TestAttackPointerOfAWaitingRunNeverNamesASpare).
func TestAttackQueueMadeUnderTheRunsNameIsLeftForThePointer(t *testing.T) {
	f := newPointerFixture(t, true)
	ctx := context.Background()
	runID := protocol.NewRunID(time.Now())
	planted, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName(pointerBroker, runID)),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	spare := f.queue(t, protocol.NewRunID(time.Now().Add(-time.Hour)), runID) // the run's real queue: accepted, in its group

	r := f.receiver(runID)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	events := make(chan rxEvent)
	go r.run(rctx, events)
	next := func() rxEvent {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if ev.fatal != nil {
					t.Fatalf("receiver: %v", ev.fatal)
				}
				if ev.waitErr == nil {
					return ev
				}
			case <-rctx.Done():
				t.Fatal("the receiver handed over nothing in 20 s")
			}
		}
	}
	if ev := next(); ev.queueURL != aws.ToString(planted.QueueUrl) {
		t.Fatalf("the receiver found %q first, want the queue named after the run (no pointer yet)", ev.queueURL)
	}
	// The dispatcher points the run at its spare; the planter's exit 0.
	if err := brokerview.PutRunPointer(ctx, f.db, f.table, runID, spare, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	body, _ := protocol.EncodeMessage([]protocol.Record{{Type: protocol.TypeExit, Src: protocol.SourceRunner, Seq: 1, Time: time.Now().UTC(),
		Exit: &protocol.Exit{Code: 0, Reason: "completed"}}})
	if _, err := f.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: planted.QueueUrl, MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(runID), MessageDeduplicationId: aws.String("forged")}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next()
		if ev.foreign != nil {
			return // stopped for safety, nothing taken: acceptable
		}
		if ev.queueURL != "" {
			continue // it followed the pointer
		}
		for _, m := range ev.msgs {
			for _, rec := range m.recs {
				if rec.Type == protocol.TypeExit {
					t.Fatalf("the receiver handed over the planted exit record from %s, a queue the run pointer does not name (it names %s): the trigger prints it as the run's", aws.ToString(planted.QueueUrl), spare)
				}
			}
		}
		if len(ev.msgs) > 0 {
			return // the run's own accepted record, from its spare
		}
	}
}
