package dispatcher_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// startWarmFails passes calls on to moto, except that the first UpdateItem
// that records a run started on a warm runner (task and slot on the run's
// item: ledger.StartWarm) fails: the invocation dies after the assignment
// went to the slot's inbox, before the run is recorded started.
type startWarmFails struct {
	dispatcher.DynamoAPI
	failed atomic.Bool
}

func (f *startWarmFails) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	names := make([]string, 0, len(in.ExpressionAttributeNames))
	for _, n := range in.ExpressionAttributeNames {
		names = append(names, n)
	}
	if slices.Contains(names, ledger.AttrTaskARN) && slices.Contains(names, ledger.AttrWarmSlot) && f.failed.CompareAndSwap(false, true) {
		return nil, errors.New("injected: the invocation died before recording the run started")
	}
	return f.DynamoAPI.UpdateItem(ctx, in, o...)
}

// Security review (issue 26, "noticed, not reproduced"): an invocation
// sends the assignment to warm runner A and dies before the run is recorded
// started; A's task runs the job and stops, and its STOPPED event removes A
// from the pool between the retry's read of the run and its read of the
// pool. The retry must not give the run to another idle runner B (the job
// would run twice: a cold start is kept single by RunTask's clientToken, an
// assignment by nothing else). The event's timing is emulated by removing A
// from the pool in the ledger (what the event leaves) before the retry.
//
// What is proven, through moto: the retry sends nothing to B and leaves B
// idle, because the run's item names A (a conditional write made before
// the first assignment was sent).
func TestWarmRetryNeverAssignsASecondSlot(t *testing.T) {
	f := &startWarmFails{}
	e := newEnv(t, func(_ *dispatcher.Settings, c *dispatcher.Clients) { f.DynamoAPI = c.Dynamo; c.Dynamo = f })
	e.withWarm("website", 1)
	a, slotA := e.idleSlot("website")
	r := e.request()
	b := e.body(r)
	if err := e.invoke(e.sns(b)); err == nil || !f.failed.Load() {
		t.Fatalf("the first invocation did not die where the test needs (err %v)", err)
	}
	if msgs := e.inboxMessages(slotA.Inbox); len(msgs) != 1 {
		t.Fatalf("runner A's inbox holds %d assignments, want 1", len(msgs))
	}
	// A's task ran the job and stopped; its event removed A from the pool.
	l := ledger.New(e.db, e.res.LedgerTable, time.Hour)
	if err := l.RemoveWarmSlot(context.Background(), "website", a, e.pool("website")); err != nil {
		t.Fatal(err)
	}
	bID, slotB := e.idleSlot("website") // the sweep's replacement, RUNNING
	e.clock.Add(time.Minute)            // past the first invocation's lease
	_ = e.invoke(e.sns(b))              // the retry: an error (will look again) is fine, a second assignment is not
	if msgs := e.inboxMessages(slotB.Inbox); len(msgs) != 0 {
		t.Errorf("the retry gave the run to a second warm runner %s: %d assignments in its inbox", bID, len(msgs))
	}
	if got := e.pool("website").Slots[bID]; got.State != ledger.SlotIdle {
		t.Errorf("runner %s after the retry: %+v, want idle", bID, got)
	}
	if it := e.item(r.RunID); it.WarmSlot != a && it.WarmSlot != "" {
		t.Errorf("the run's item names warm runner %q, want %s", it.WarmSlot, a)
	}
}
