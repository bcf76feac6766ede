package trigger

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/faultproxy"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// The trigger finds a run's queue through the run pointer the dispatcher
// writes in the view table (issue 26): a run given a spare queue has a
// queue not named after it. Moto on loopback holds the table and queues;
// it evaluates no IAM, so only the lookup is proven here (who may read the
// pointer is the IAM evaluation's: infra/internal/iamcheck).

const pointerBroker = "ptr"

type pointerFixture struct {
	sqs     *sqs.Client
	db      *dynamodb.Client
	table   string
	account string
}

func newPointerFixture(t *testing.T, withTable bool) pointerFixture {
	t.Helper()
	_, cfg := mototest.Start(t)
	f := pointerFixture{sqs: sqs.NewFromConfig(cfg), db: dynamodb.NewFromConfig(cfg), table: brokerview.TableName(pointerBroker), account: "123456789012"}
	if withTable {
		if _, err := f.db.CreateTable(context.Background(), brokerview.TableInput(f.table)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// queue creates a run queue named with id and puts one accepted record of
// runID in it.
func (f pointerFixture) queue(t *testing.T, id, runID string) string {
	t.Helper()
	ctx := context.Background()
	q, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName(pointerBroker, id)),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protocol.EncodeMessage([]protocol.Record{{Type: protocol.TypeAccepted, Src: protocol.SourceDispatcher, Seq: 1, Time: time.Now().UTC(),
		Accepted: &protocol.Accepted{Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/c/t"}}})
	if _, err := f.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(runID), MessageDeduplicationId: aws.String("d-1")}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(q.QueueUrl)
}

func (f pointerFixture) receiver(runID string) *receiver {
	return &receiver{sqs: f.sqs, view: f.db, viewTable: f.table, runID: runID, queueName: protocol.QueueName(pointerBroker, runID),
		owner: f.account, wait: 1, retry: 200 * time.Millisecond, now: time.Now}
}

// found runs r until it names a queue and hands over a batch, or 10 s pass.
func found(t *testing.T, r *receiver) (url string, recs int, waitErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := make(chan rxEvent)
	go r.run(ctx, events)
	for {
		select {
		case ev := <-events:
			switch {
			case ev.fatal != nil:
				t.Fatalf("receiver: %v", ev.fatal)
			case ev.foreign != nil:
				return url, 0, ev.foreign // the receiver stops: nothing taken
			case ev.waitErr != nil:
				waitErr = ev.waitErr
			case ev.queueURL != "":
				url = ev.queueURL
			case len(ev.msgs) > 0:
				return url, len(ev.msgs), waitErr
			}
		case <-ctx.Done():
			return url, 0, waitErr
		}
	}
}

func TestTriggerFindsASpareQueueThroughTheRunPointer(t *testing.T) {
	f := newPointerFixture(t, true)
	runID := protocol.NewRunID(time.Now())
	spare := f.queue(t, protocol.NewRunID(time.Now().Add(-time.Hour)), runID) // named otherwise
	if err := brokerview.PutRunPointer(context.Background(), f.db, f.table, runID, spare, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	url, n, _ := found(t, f.receiver(runID))
	if url != spare || n != 1 {
		t.Fatalf("receiver found queue %q with %d messages, want the pointer's %s with 1", url, n, spare)
	}
}

func TestTriggerFindsTheRunNamedQueueOfAPreviousBroker(t *testing.T) {
	for _, withTable := range []bool{true, false} { // a view and no pointer; no view table at all
		f := newPointerFixture(t, withTable)
		runID := protocol.NewRunID(time.Now())
		own := f.queue(t, runID, runID)
		url, n, _ := found(t, f.receiver(runID))
		if url != own || n != 1 {
			t.Fatalf("view table %v: receiver found %q with %d messages, want the run-named %s", withTable, url, n, own)
		}
	}
}

func TestTriggerFollowsNoPointerOutOfTheBrokersRunQueues(t *testing.T) {
	f := newPointerFixture(t, true)
	runID := protocol.NewRunID(time.Now())
	q, err := f.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("elsewhere.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := brokerview.PutRunPointer(context.Background(), f.db, f.table, runID, aws.ToString(q.QueueUrl), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r := f.receiver(runID)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // room for -race on a loaded machine
	defer cancel()
	events := make(chan rxEvent)
	go r.run(ctx, events)
	select {
	case ev := <-events:
		if ev.queueURL != "" || ev.waitErr == nil || !strings.Contains(ev.waitErr.Error(), "not a run queue of this broker") {
			t.Fatalf("receiver event %+v, want it to refuse the pointer", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event from the receiver")
	}
}

// A principal that may not read run pointers (AccessDenied: a CI role of
// another account without GetItem on the view table) still follows the
// queue named after the run, and asks for the pointer once after its first
// receive, not on every receive (which would double its calls for the whole
// run). moto evaluates no IAM: the denial is the fault proxy's answer to
// GetItem; the queue and its messages are moto's.
func TestTriggerDeniedThePointerStopsAskingForIt(t *testing.T) {
	srv, cfg := mototest.Start(t)
	var getItems atomic.Int32
	proxy, err := faultproxy.Start(srv.URL, faultproxy.Options{Plan: func(service, action string, _ int) faultproxy.Fault {
		if service == "dynamodb" && action == "GetItem" {
			getItems.Add(1)
			return faultproxy.AccessDenied
		}
		return faultproxy.None
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	f := pointerFixture{sqs: sqs.NewFromConfig(cfg), db: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(proxy.URL) }),
		table: brokerview.TableName(pointerBroker), account: "123456789012"}
	if _, err := dynamodb.NewFromConfig(cfg).CreateTable(context.Background(), brokerview.TableInput(f.table)); err != nil {
		t.Fatal(err)
	}
	runID := protocol.NewRunID(time.Now())
	named := f.queue(t, runID, runID)
	r := f.receiver(runID)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := make(chan rxEvent)
	go r.run(ctx, events)
	var url string
	got := 0
	for got == 0 {
		select {
		case ev := <-events:
			switch {
			case ev.fatal != nil || ev.foreign != nil:
				t.Fatalf("receiver: %v %v", ev.fatal, ev.foreign)
			case ev.queueURL != "":
				url = ev.queueURL
			case len(ev.msgs) > 0:
				got += len(ev.msgs)
			}
		case <-ctx.Done():
			t.Fatal("the receiver handed over nothing")
		}
	}
	// Then empty long polls of 1 s each: the old code read the pointer
	// after every one of them.
	time.Sleep(4 * time.Second)
	cancel()
	if url != named || got != 1 {
		t.Fatalf("receiver followed %q and got %d messages, want the run-named %s and 1", url, got, named)
	}
	// One read while it looked for the queue, one after the first receive.
	if n := getItems.Load(); n > 2 {
		t.Errorf("the pointer was read %d times though every read was denied", n)
	}
}
