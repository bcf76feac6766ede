package dispatcher_test

import (
	"testing"
	"time"
)

// Security review of issue 26 (start breakdown in `show`): an ECS event
// naming a run but another task (a task of the cluster started with the
// run id as startedBy, of another family or of the job's own; or an event
// handed to the dispatcher by whoever may invoke it) must not write that
// task's start times on the run: `show` would print a start breakdown (a
// pull of minutes, a start before the request) that is not the run's.
// Only the run's own task's events may. What is proven: the ledger item
// the dispatcher writes (through moto) after such events. Who can deliver
// an event at all is IAM's (EventBridge's aws.ecs source is ECS's own; job
// roles may not invoke the dispatcher: NeverTouchTheDispatcher).
func TestAttackForgedTaskEventDoesNotRewriteTheStartBreakdown(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	if ts := e.item(runID).TaskStart; !ts.IsZero() {
		t.Fatalf("the run has start times before any event: %+v", ts)
	}
	// Before the run's own task reports (its start is unknown, so any
	// time would be new), events of another task naming the run, of the
	// job's pinned family and of another.
	other := arn[:len(arn)-4] + "beef"
	past := e.clock.Now().Add(-3 * time.Hour).Format(time.RFC3339)
	for _, fam := range []string{e.name + "-website", e.name + "-other"} {
		if err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": other, "StartedBy": runID, "Version": 9, "Family": fam, "Time": past})); err != nil {
			t.Fatal(err)
		}
	}
	if ts := e.item(runID).TaskStart; !ts.IsZero() {
		t.Errorf("another task's event wrote the run's start breakdown: %+v", ts)
	}
	if got := e.item(runID).TaskARN; got != arn {
		t.Errorf("the run's task is %s after another task's event, want %s", got, arn)
	}
	// The run's own task's event does (the test can tell).
	if err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": arn, "StartedBy": runID, "Version": 2})); err != nil {
		t.Fatal(err)
	}
	if ts := e.item(runID).TaskStart; ts.Started.IsZero() || ts.Created.Before(e.clock.Now().Add(-time.Hour)) {
		t.Errorf("the run's own RUNNING event: start %+v", ts)
	}
}
