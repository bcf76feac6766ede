package trigger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Security review of issue 26: a run's queue is no longer bound to the run
// by its name, only by the run pointer. A pointer naming another run's
// queue (a genuine broker queue, which passes the receiver's name and
// account check) — written while a waiting run starts (the dispatcher
// points it at the requester's spare for a moment: TestAttackPointerOf…
// in the dispatcher), or by a principal that lifted the view table's Deny
// (see the review) — makes the trigger print that run's output and exit
// with its code as its own: records carry no run id, and the receiver does
// not look at the message group, which is the run id on every message the
// broker writes. The receiver must hand the watch loop no message of
// another run's group. What is proven: the receiver against moto's queue
// (FIFO message groups as SQS keeps them).
func TestAttackPointerToAnotherRunsQueueYieldsNoRecords(t *testing.T) {
	f := newPointerFixture(t, true)
	runID := protocol.NewRunID(time.Now())
	other := protocol.NewRunID(time.Now().Add(-time.Minute))
	otherQueue := f.queue(t, other, other) // another run's queue and records (group = its run id)
	if err := brokerview.PutRunPointer(context.Background(), f.db, f.table, runID, otherQueue, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, n, err := found(t, f.receiver(runID))
	if n != 0 {
		t.Errorf("the receiver of run %s handed over %d messages of run %s's group: the trigger would print another run's output and exit code as its own", runID, n, other)
	}
	// It says why it stopped (the watch loop ends the run for safety, 248).
	if err == nil || !strings.Contains(err.Error(), "message group \""+other+"\"") {
		t.Errorf("the receiver's report: %v, want it to name the other run's message group", err)
	}
}
