package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Two runs claim the same idle slot, each from the pool as it read it
// before either wrote (the interleaving that matters: both saw the slot
// idle): exactly one wins, and the loser's claim fails its condition,
// through moto's evaluation of the condition on the slot's map entry.
//
// What is proven, and how: the claims are made concurrently, but their
// writes are let through one at a time (a lock around SetWarmSlot): moto
// 5.2.1's DynamoDB checks a condition and writes the item without a lock
// of its own, so two truly simultaneous conditional writes can both pass
// there (see throttle_test.go in the dispatcher). DynamoDB applies a
// conditional write atomically ("Condition expressions", DynamoDB
// developer guide); this test proves the condition a claim writes under,
// from a stale read, not DynamoDB's atomicity.
func TestWarmSlotClaimedOnce(t *testing.T) {
	l, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	id := protocol.NewWarmSlotID(now)
	idle := ledger.WarmSlot{State: ledger.SlotIdle, Inbox: "http://q/inbox", TaskARN: "arn:task/1", Created: now, Since: now}
	if err := l.AddWarmSlot(ctx, "web", id, idle); err != nil {
		t.Fatal(err)
	}
	if err := l.AddWarmSlot(ctx, "web", id, idle); !errors.Is(err, ledger.ErrConditionFailed) {
		t.Fatalf("adding the same slot twice: %v", err)
	}
	for round := 0; round < 5; round++ {
		p, err := l.GetWarm(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Slots[id]; got.State != ledger.SlotIdle || got.TaskARN != "arn:task/1" {
			t.Fatalf("round %d: slot reads %+v", round, got)
		}
		runs := []string{protocol.NewRunID(now), protocol.NewRunID(now)}
		errs := make([]error, len(runs))
		var wg sync.WaitGroup
		var one sync.Mutex // one write at a time in moto (see above)
		start := make(chan struct{})
		for i, run := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				next := p.Slots[id]
				next.State, next.Run = ledger.SlotAssigned, run
				one.Lock()
				defer one.Unlock()
				errs[i] = l.SetWarmSlot(ctx, "web", id, p, next)
			}()
		}
		close(start)
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("round %d: both runs claimed the slot", round)
			case err == nil:
				won = i
			case !errors.Is(err, ledger.ErrConditionFailed):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no run claimed the idle slot", round)
		}
		after, _ := l.GetWarm(ctx, "web")
		if s := after.Slots[id]; s.State != ledger.SlotAssigned || s.Run != runs[won] {
			t.Fatalf("round %d: slot is %+v, want assigned to %s", round, s, runs[won])
		}
		// An assigned slot is never claimed again, from a stale read either.
		again := p.Slots[id]
		again.State, again.Run = ledger.SlotAssigned, protocol.NewRunID(now)
		if err := l.SetWarmSlot(ctx, "web", id, p, again); !errors.Is(err, ledger.ErrConditionFailed) {
			t.Fatalf("round %d: a stale claim of an assigned slot: %v", round, err)
		}
		// Back to idle for the next round (as a new slot would be).
		if err := l.SetWarmSlot(ctx, "web", id, after, idle); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := l.GetWarm(ctx, "web")
	if err := l.RemoveWarmSlot(ctx, "web", id, p); err != nil {
		t.Fatal(err)
	}
	if p, _ := l.GetWarm(ctx, "web"); len(p.Slots) != 0 {
		t.Fatalf("slot not removed: %+v", p.Slots)
	}
}

// A run's warm runner is recorded once (ledger.AssignWarm, before the
// assignment is sent): the same slot again is the run's own write
// repeated; another slot is refused, and the caller learns the recorded
// one. Through moto's evaluation of the condition on the run's item.
func TestAssignWarmRecordsOneSlot(t *testing.T) {
	l, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	run := protocol.NewRunID(now)
	a, b := protocol.NewWarmSlotID(now), protocol.NewWarmSlotID(now)
	if _, err := l.AssignWarm(ctx, run, a); err == nil {
		t.Fatal("a slot was recorded for a run that is not in the ledger")
	}
	if err := l.Claim(ctx, ledger.Item{RunID: run, Status: ledger.Launching, Job: "web", CreatedAt: now, ClaimToken: ledger.NewToken()}); err != nil {
		t.Fatal(err)
	}
	for i, try := range []string{a, a, b} {
		got, err := l.AssignWarm(ctx, run, try)
		if err != nil || got != a {
			t.Fatalf("assignment %d (%s): recorded %q, %v; want %s", i+1, try, got, err, a)
		}
	}
	if it, _, err := l.Get(ctx, run); err != nil || it.WarmSlot != a {
		t.Fatalf("the run's item names slot %q (%v), want %s", it.WarmSlot, err, a)
	}
}
