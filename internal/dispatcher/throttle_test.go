package dispatcher_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
)

// stop delivers the STOPPED event of a run's task (the job exited).
func (e *env) stop(runID string) {
	e.t.Helper()
	arns := e.tasks(runID)
	if len(arns) != 1 {
		e.t.Fatalf("run %s has %d tasks, want 1", runID, len(arns))
	}
	if err := e.invoke(e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": arns[0], "StartedBy": runID, "Version": 5})); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) openRuns(arn string) map[string]int64 {
	e.t.Helper()
	open, err := e.d.OpenRuns(context.Background(), arn)
	if err != nil {
		e.t.Fatal(err)
	}
	return open
}

// TestFloodFromOnePrincipalDoesNotHoldUpAnother: principal A (two sessions
// of one role) sends 50 run requests, five at a time (the dispatcher's
// reserved concurrency), while principal B sends one. A gets exactly its
// limit of runs and the rest are refused "throttled" on their own queues
// without a task; B's run is accepted, launched and runs to completion.
// Once A's runs end, A may run again: no slot leaked.
func TestFloodFromOnePrincipalDoesNotHoldUpAnother(t *testing.T) {
	e := newEnv(t)
	const limit, flood = 5, 50
	e.cfg.Broker.MaxOpenRunsPerPrincipal = limit
	a1, a2 := e.assume(deployerRole, "flood-1"), e.assume(deployerRole, "flood-2") // one principal: sessions share the limit
	b := e.assume(jenkinsRole, "other-1")

	reqs := make(chan *protocol.Request)
	var mu sync.Mutex
	var aRuns []string
	var wg sync.WaitGroup
	// One sender, alternating A's two sessions, while B's run comes in the
	// middle. Not several concurrent senders: moto 5.2.1's DynamoDB checks
	// a ConditionExpression and writes the item without a lock, so two
	// concurrent conditional puts on the principal's item can both succeed
	// there (a concurrent version of this test once accepted 6 of limit 5).
	// DynamoDB itself applies a conditional write atomically ("Condition
	// expressions", DynamoDB developer guide), which is what the version
	// compare-and-set relies on; this test proves the counting, the
	// refusal, the answer and the release, not the atomicity.
	wg.Add(1)
	go func() {
		defer wg.Done()
		n := 0
		for r := range reqs {
			id := []prooftest.Identity{a1, a2}[n%2]
			n++
			if err := e.runAs(id, r); err != nil {
				t.Errorf("flood request %s: %v", r.RunID, err)
			}
		}
	}()
	bReq := e.request()
	for i := range flood {
		r := e.request()
		mu.Lock()
		aRuns = append(aRuns, r.RunID)
		mu.Unlock()
		reqs <- r
		if i == flood/2 {
			// B's run arrives in the middle of the flood.
			if err := e.runAs(b, bReq); err != nil {
				t.Fatalf("B's run: %v", err)
			}
		}
	}
	close(reqs)
	wg.Wait()

	// B: accepted and launched regardless of A's flood.
	if rec := e.only(bReq.RunID, protocol.TypeAccepted); rec.Accepted.TaskARN == "" {
		t.Fatalf("B's accepted record names no task: %+v", rec)
	}
	var accepted, throttled []string
	for _, id := range aRuns {
		it := e.item(id)
		switch {
		case it.Status == ledger.Accepted:
			accepted = append(accepted, id)
			if n := len(e.tasks(id)); n != 1 {
				t.Errorf("accepted run %s has %d tasks", id, n)
			}
		case it.Status == ledger.Rejected && it.RejectCode == protocol.RejectThrottled:
			throttled = append(throttled, id)
			if !strings.Contains(it.Reason, "has 5 open runs (limit 5)") || !strings.Contains(it.Reason, deployerRole) {
				t.Errorf("throttled reason: %q", it.Reason)
			}
			if n := len(e.tasks(id)); n != 0 {
				t.Errorf("throttled run %s has %d tasks", id, n)
			}
		default:
			t.Errorf("A's run %s: status %q code %q reason %q", id, it.Status, it.RejectCode, it.Reason)
		}
	}
	if len(accepted) != limit || len(throttled) != flood-limit {
		t.Fatalf("A: %d accepted, %d throttled; want %d and %d", len(accepted), len(throttled), limit, flood-limit)
	}
	// The refusal is answered on the run's own queue (deploy-trigger: 241).
	if rec := e.only(throttled[0], protocol.TypeRejected); rec.Rejected.Code != protocol.RejectThrottled {
		t.Errorf("throttled run's record: %+v", rec.Rejected)
	}
	if open := e.openRuns(a1.ARN); len(open) != limit {
		t.Errorf("A holds %d slots after the flood, want %d", len(open), limit)
	}
	t.Logf("RESULT flood_requests=%d accepted=%d throttled=%d other_principal_accepted=1", flood, len(accepted), len(throttled))

	// B's run completes; A's runs end and give their slots back.
	e.stop(bReq.RunID)
	if it := e.item(bReq.RunID); it.Status != ledger.Stopped {
		t.Errorf("B's run after STOPPED: %+v", it)
	}
	if open := e.openRuns(b.ARN); len(open) != 0 {
		t.Errorf("B holds %d slots after its run ended", len(open))
	}
	for _, id := range accepted {
		e.stop(id)
	}
	if open := e.openRuns(a1.ARN); len(open) != 0 {
		t.Errorf("A holds slots %v after all its runs ended", open)
	}
	again := e.request()
	if err := e.runAs(a2, again); err != nil {
		t.Fatal(err)
	}
	e.only(again.RunID, protocol.TypeAccepted)
}

// TestSlotOfARunThatNeverEndsLapses: a run whose end is never reported (a
// lost STOPPED event) holds its principal's slot only until the slot's
// expiry (max request age + skew + job timeout + grace + ECS stop timeout),
// not for ever.
func TestSlotOfARunThatNeverEndsLapses(t *testing.T) {
	e := newEnv(t)
	e.cfg.Broker.MaxOpenRunsPerPrincipal = 1
	first, _ := e.started() // never ends
	blocked := e.request()
	if err := e.run(blocked); err != nil {
		t.Fatal(err)
	}
	if it := e.item(blocked.RunID); it.RejectCode != protocol.RejectThrottled {
		t.Fatalf("second run with limit 1: %+v", it)
	}
	// website: timeout 10m; 15m + 2m + 10m + 30s + 2m = 29m30s.
	e.clock.Add(29 * time.Minute)
	late := e.request()
	if err := e.run(late); err != nil {
		t.Fatal(err)
	}
	if it := e.item(late.RunID); it.RejectCode != protocol.RejectThrottled {
		t.Fatalf("a run before the slot's expiry: %+v", it)
	}
	e.clock.Add(time.Minute)
	after := e.request()
	if err := e.run(after); err != nil {
		t.Fatal(err)
	}
	if it := e.item(after.RunID); it.Status != ledger.Accepted {
		t.Fatalf("a run after the silent run's slot lapsed: %+v", it)
	}
	if open := e.openRuns(e.id.ARN); len(open) != 1 || open[after.RunID] == 0 || open[first] != 0 {
		t.Errorf("open runs %v, want only %s", open, after.RunID)
	}
}

// TestEndedRunsSlotIsDroppedWhenFull: a run that ended without giving its
// slot back (the invocation died after writing the end) does not count: a
// full principal's slots are checked against the ledger before a refusal.
func TestEndedRunsSlotIsDroppedWhenFull(t *testing.T) {
	e := newEnv(t)
	e.cfg.Broker.MaxOpenRunsPerPrincipal = 1
	first, _ := e.started()
	if err := e.d.LedgerFinish(context.Background(), first, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if open := e.openRuns(e.id.ARN); len(open) != 1 {
		t.Fatalf("open runs before: %v", open)
	}
	next := e.request()
	if err := e.run(next); err != nil {
		t.Fatal(err)
	}
	if it := e.item(next.RunID); it.Status != ledger.Accepted {
		t.Fatalf("run after an ended run that kept its slot: %+v", it)
	}
	if open := e.openRuns(e.id.ARN); len(open) != 1 || open[next.RunID] == 0 {
		t.Errorf("open runs %v, want only %s", open, next.RunID)
	}
}

// TestRejectionsGiveSlotsBack: a run refused after its slot was taken (no
// pinned task definition: launch-failed) gives it back; a redelivery of
// the refused request takes none.
func TestRejectionsGiveSlotsBack(t *testing.T) {
	e := newEnv(t, func(s *dispatcher.Settings, _ *dispatcher.Clients) { s.TaskDefinitions = nil })
	e.cfg.Broker.MaxOpenRunsPerPrincipal = 1
	for range 3 {
		r := e.request()
		b := e.body(r)
		for range 2 { // delivered twice
			if err := e.invoke(e.sns(b)); err != nil {
				t.Fatal(err)
			}
		}
		if it := e.item(r.RunID); it.RejectCode != protocol.RejectLaunch {
			t.Fatalf("run without a pinned revision: %+v", it)
		}
	}
	if open := e.openRuns(e.id.ARN); len(open) != 0 {
		t.Errorf("slots held after refusals: %v", open)
	}
}
