package ledger_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// newStore is a ledger in a fresh table of moto on loopback, created as the
// stack creates it.
func newStore(t *testing.T) (*ledger.Store, *dynamodb.Client) {
	t.Helper()
	_, cfg := mototest.Start(t)
	db := dynamodb.NewFromConfig(cfg)
	if _, err := db.CreateTable(context.Background(), ledger.TableInput("ledger")); err != nil {
		t.Fatal(err)
	}
	return ledger.New(db, "ledger", 24*time.Hour), db
}

// reach takes a fresh run to each status through the dispatcher's writes.
// A status added to ledger.Statuses needs a way here: the test fails until
// it has one, and then the readers below see it.
var reach = map[ledger.Status]func(ctx context.Context, l *ledger.Store, runID string, now time.Time) error{
	ledger.Launching: func(context.Context, *ledger.Store, string, time.Time) error { return nil },
	ledger.Queued: func(ctx context.Context, l *ledger.Store, id string, now time.Time) error {
		return l.Hold(ctx, id, ledger.Queued, "{}", "https://sqs/q", now)
	},
	ledger.AwaitingApproval: func(ctx context.Context, l *ledger.Store, id string, now time.Time) error {
		return l.Hold(ctx, id, ledger.AwaitingApproval, "{}", "https://sqs/q", now)
	},
	ledger.Accepted: func(ctx context.Context, l *ledger.Store, id string, now time.Time) error {
		_, err := l.Start(ctx, id, "arn:aws:ecs:eu-west-1:111111111111:task/c/abc", "https://sqs/q")
		return err
	},
	ledger.Stopped: func(ctx context.Context, l *ledger.Store, id string, now time.Time) error {
		if _, err := l.Start(ctx, id, "arn:aws:ecs:eu-west-1:111111111111:task/c/abc", "https://sqs/q"); err != nil {
			return err
		}
		code := 0
		_, err := l.Finish(ctx, id, ledger.End{At: now, StopCode: "EssentialContainerExited", ExitCode: &code})
		return err
	},
	ledger.Rejected: func(ctx context.Context, l *ledger.Store, id string, now time.Time) error {
		return l.Reject(ctx, id, protocol.RejectLaunch, "could not start", time.Time{})
	},
	ledger.Abandoned: func(ctx context.Context, l *ledger.Store, id string, now time.Time) error {
		_, err := l.Abandon(ctx, id, now)
		return err
	},
	ledger.Cancelled: nil, // claimed as such: an early cancel's tombstone
}

// Every status, written by the dispatcher's methods, reads back the same
// through the dispatcher's Get and the history index's Query, and has an
// outcome the history commands know.
func TestEveryStatusThroughTheReaders(t *testing.T) {
	l, db := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, st := range ledger.Statuses() {
		way, ok := reach[st]
		if !ok {
			t.Fatalf("status %s: no way to reach it in this test; add one", st)
		}
		id := protocol.NewRunID(now.Add(time.Duration(i) * time.Millisecond))
		claim := ledger.Item{RunID: id, Status: ledger.Launching, Job: "web", RequestedAt: now, CreatedAt: now,
			LeaseUntil: now.Add(time.Minute), ClaimToken: ledger.NewToken(), RequestHash: "h", RequestedBy: "arn:aws:iam::111111111111:user/u"}
		if way == nil {
			claim.Status, claim.RequestHash, claim.Reason, claim.RejectCode = st, "", "cancelled before the run request", protocol.RejectCancelled
		}
		if err := l.Claim(ctx, claim); err != nil {
			t.Fatal(err)
		}
		if way != nil {
			if err := way(ctx, l, id, now); err != nil {
				t.Fatalf("status %s: %v", st, err)
			}
		}
		got, found, err := l.Get(ctx, id)
		if err != nil || !found || got.Status != st {
			t.Fatalf("status %s: Get gives %q (found %v, %v)", st, got.Status, found, err)
		}
		out, err := db.Query(ctx, ledger.RunQuery("ledger", id))
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
	out, err := db.Query(ctx, ledger.RangeQuery("ledger", at, at.Add(time.Hour-time.Millisecond), ledger.Filter{Job: "web"}))
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
	} {
		if got, want := c[0], c[1]; got != want {
			t.Errorf("stored name %q is now %q", want, got)
		}
	}
}
