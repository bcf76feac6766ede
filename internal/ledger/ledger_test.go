package ledger_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/ledgertest"
)

func newStore(t *testing.T) (*ledger.Store, *dynamodb.Client) {
	l, db, _ := ledgertest.New(t)
	return l, db
}

// Every status, written by the dispatcher's methods (ledgertest.Reach),
// reads back the same through the dispatcher's Get and the history index's
// Query, and has an outcome the history commands know. The trigger's
// readers (runs, show, logs, attach) take every status in
// internal/trigger/status_readers_test.go.
func TestEveryStatusThroughTheReaders(t *testing.T) {
	l, db := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, st := range ledger.Statuses() {
		id := protocol.NewRunID(now.Add(time.Duration(i) * time.Millisecond))
		if err := ledgertest.Reach(ctx, l, id, "web", st, now); err != nil {
			t.Fatalf("status %s: %v", st, err)
		}
		got, found, err := l.Get(ctx, id)
		if err != nil || !found || got.Status != st {
			t.Fatalf("status %s: Get gives %q (found %v, %v)", st, got.Status, found, err)
		}
		out, err := db.Query(ctx, ledger.RunQuery(ledgertest.Table, id))
		if err != nil || len(out.Items) != 1 {
			t.Fatalf("status %s: history Query: %v, %d items", st, err, len(out.Items))
		}
		it := ledger.Decode(out.Items[0])
		if it.Status != st || it.Job != "web" || !it.CreatedAt.Equal(now) {
			t.Errorf("status %s: the history index gives %+v", st, it)
		}
		if o := ledger.Outcome(it); !slices.Contains(ledger.Outcomes(), o) {
			t.Errorf("status %s: outcome %q is not among ledger.Outcomes", st, o)
		}
		if st.Waiting() != (st == ledger.Queued || st == ledger.AwaitingApproval) {
			t.Errorf("status %s: Waiting %v", st, st.Waiting())
		}
		if ledger.Pending(ledger.Outcome(it)) != (st == ledger.Launching || st == ledger.Accepted || st.Waiting()) {
			t.Errorf("status %s: outcome %s pending %v", st, ledger.Outcome(it), ledger.Pending(ledger.Outcome(it)))
		}
	}
}

// The outcome of a stopped run: its exit code, or a cancel asked.
func TestOutcomeOfAStoppedRun(t *testing.T) {
	zero, three := 0, 3
	for _, tc := range []struct {
		it   ledger.Item
		want string
	}{
		{ledger.Item{Status: ledger.Stopped, ExitCode: &zero}, ledger.OutcomeSucceeded},
		{ledger.Item{Status: ledger.Stopped, ExitCode: &three}, ledger.OutcomeFailed},
		{ledger.Item{Status: ledger.Stopped}, ledger.OutcomeStopped},
		{ledger.Item{Status: ledger.Stopped, ExitCode: &three, CancelAsked: time.Now()}, ledger.OutcomeCancelled},
		{ledger.Item{Status: ledger.Stopped, CancelledAt: time.Now()}, ledger.OutcomeCancelled},
		{ledger.Item{Status: "from-the-future"}, "from-the-future"},
	} {
		if got := ledger.Outcome(tc.it); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.it, got, tc.want)
		}
	}
}

// A write whose condition no longer holds fails with ErrConditionFailed and
// changes nothing: a waiting run is started by one invocation only.
func TestStartWaitingOnce(t *testing.T) {
	l, _ := newStore(t)
	ctx := context.Background()
	now := time.Now()
	id := protocol.NewRunID(now)
	if err := l.Claim(ctx, ledger.Item{RunID: id, Status: ledger.Launching, Job: "web", CreatedAt: now, ClaimToken: ledger.NewToken()}); err != nil {
		t.Fatal(err)
	}
	if err := l.Hold(ctx, id, ledger.Queued, "{}", "https://sqs/q", now); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartWaiting(ctx, id, ledger.Queued, now.Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartWaiting(ctx, id, ledger.Queued, now.Add(time.Minute), nil); err != ledger.ErrConditionFailed {
		t.Fatalf("second start: %v, want ErrConditionFailed", err)
	}
	if err := l.Claim(ctx, ledger.Item{RunID: id, Status: ledger.Launching, ClaimToken: ledger.NewToken()}); err != ledger.ErrAlreadyClaimed {
		t.Fatalf("second claim: %v", err)
	}
}

func TestRangeQueryBounds(t *testing.T) {
	l, db := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{-time.Millisecond, 0, time.Hour - time.Millisecond, time.Hour} {
		id := protocol.NewRunID(at.Add(d))
		if err := l.Claim(ctx, ledger.Item{RunID: id, Status: ledger.Launching, Job: "web", CreatedAt: at, ClaimToken: ledger.NewToken()}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := db.Query(ctx, ledger.RangeQuery(ledgertest.Table, at, at.Add(time.Hour-time.Millisecond), ledger.Filter{Job: "web"}))
	if err != nil || len(out.Items) != 2 {
		t.Fatalf("%v: %d runs in the hour, want 2 (the bounds are by run id time, to the millisecond)", err, len(out.Items))
	}
}

// The attribute names are the stored format: ledgers written by earlier
// dispatchers are read with them, and the stack's TTL and index name them.
// Renaming one is a migration, not a refactoring; this pins them.
func TestStoredNamesDoNotChange(t *testing.T) {
	for _, c := range [][2]string{
		{ledger.AttrRunID, "run_id"}, {ledger.AttrStatus, "status"}, {ledger.AttrExpiresAt, "expires_at"}, {ledger.AttrHistory, "history"},
		{ledger.HistoryIndex, "history"}, {ledger.HistoryValue, "run"}, {ledger.AttrWriteToken, "write_token"}, {ledger.AttrClaimToken, "claim_token"},
		{ledger.AttrLeaseUntil, "lease_until"}, {ledger.AttrTaskARN, "task_arn"}, {ledger.AttrEndedAt, "ended_at"}, {ledger.AttrExitCode, "exit_code"},
		{ledger.AttrCancelAsked, "cancel_requested_at"}, {ledger.AttrQueuedRequest, "queued_request"}, {ledger.AttrOpenRuns, "open_runs"},
		{ledger.AttrSlotVersion, "slot_version"}, {ledger.PrincipalPrefix, "principal#"}, {ledger.SlotKeyPrefix, "slot#"},
		{string(ledger.Launching), "launching"}, {string(ledger.Queued), "queued"}, {string(ledger.AwaitingApproval), "awaiting-approval"},
		{string(ledger.Accepted), "accepted"}, {string(ledger.Stopped), "stopped"}, {string(ledger.Rejected), "rejected"},
		{string(ledger.Abandoned), "abandoned"}, {string(ledger.Cancelled), "cancelled"},
		{ledger.AttrTaskCreatedAt, "task_created_at"}, {ledger.AttrPullStartedAt, "task_pull_started_at"},
		{ledger.AttrPullStoppedAt, "task_pull_stopped_at"}, {ledger.AttrTaskStartedAt, "task_started_at"},
	} {
		if got, want := c[0], c[1]; got != want {
			t.Errorf("stored name %q is now %q", want, got)
		}
	}
}

// An idempotency key is its first owner's: the owner may use it again,
// another owner may not (issue 24).
func TestClaimKey(t *testing.T) {
	l, _ := newStore(t)
	ctx := context.Background()
	now := time.Now()
	const jenkins, stranger = "arn:aws:iam::111111111111:role/jenkins", "arn:aws:iam::111111111111:role/other"
	if err := l.ClaimKey(ctx, "jenkins-release-42", jenkins, now); err != nil {
		t.Fatal(err)
	}
	if err := l.ClaimKey(ctx, "jenkins-release-42", jenkins, now); err != nil {
		t.Errorf("the owner again: %v", err)
	}
	if err := l.ClaimKey(ctx, "jenkins-release-42", stranger, now); !errors.Is(err, ledger.ErrKeyInUse) {
		t.Errorf("another owner: %v, want ErrKeyInUse", err)
	}
	if err := l.ClaimKey(ctx, "other-key", stranger, now); err != nil {
		t.Errorf("another key: %v", err)
	}
}

// A task's start times are recorded as the events give them, each event
// adding what the ones before did not have, and read back through Get and
// the history index; a write without any time is refused and writes nothing.
func TestRecordTaskStart(t *testing.T) {
	l, db := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := protocol.NewRunID(now)
	if err := ledgertest.Reach(ctx, l, id, "web", ledger.Accepted, now); err != nil {
		t.Fatal(err)
	}
	created := ledger.TaskStart{Created: now.Add(100 * time.Millisecond)}
	if _, err := l.RecordTaskStart(ctx, id, created); err != nil { // PROVISIONING
		t.Fatal(err)
	}
	all := ledger.TaskStart{Created: created.Created, PullStarted: now.Add(time.Second), PullStopped: now.Add(2 * time.Second), Started: now.Add(3 * time.Second)}
	it, err := l.RecordTaskStart(ctx, id, all) // RUNNING
	if err != nil || it.TaskStart != all || it.Status != ledger.Accepted || it.TaskARN != ledgertest.TaskARN {
		t.Fatalf("after RUNNING's times: %v, %+v", err, it)
	}
	if all.Adds(it.TaskStart) || !all.Adds(ledger.TaskStart{Created: all.Created}) {
		t.Error("Adds: a repeat would add nothing; the times after the creation would")
	}
	out, err := db.Query(ctx, ledger.RunQuery(ledgertest.Table, id))
	if err != nil || len(out.Items) != 1 || ledger.Decode(out.Items[0]).TaskStart != all {
		t.Fatalf("the history index gives %v, %v", err, out.Items)
	}
	if _, err := l.RecordTaskStart(ctx, id, ledger.TaskStart{}); err == nil {
		t.Error("a task start without any time was written")
	}
}
