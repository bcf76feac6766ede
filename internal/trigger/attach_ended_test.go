package trigger

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/ledgertest"
)

// attach and logs --follow on a run that ended an hour ago and whose log
// has no exit record (it never reached the log, or the log is gone) end at
// once with the outcome the ledger knows, as show does, instead of waiting
// out --lost-after (here the old 3m default) from when they first looked.
// The runs are written through the dispatcher's own ledger methods into
// moto's table; the context's 30 s is only a guard against a hang.
func TestAttachOnAnEndedRunReadsTheLedgerFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, db, cfg := ledgertest.New(t)
	logs := cloudwatchlogs.NewFromConfig(cfg)
	h := historyReader{db: db, table: ledgertest.Table}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ended := now.Add(-time.Hour)
	code := func(n int) *int { return &n }
	for i, c := range []struct {
		name   string
		end    ledger.End
		cancel bool
		want   int
		say    string
	}{
		{"failed", ledger.End{At: ended, StopCode: "EssentialContainerExited", ExitCode: code(3)}, false, 3, "job web failed with exit code 3"},
		{"succeeded", ledger.End{At: ended, StopCode: "EssentialContainerExited", ExitCode: code(0)}, false, 0, "job web succeeded"},
		{"runner-timeout", ledger.End{At: ended, StopCode: "EssentialContainerExited", ExitCode: code(exitcode.Timeout)}, false, exitcode.Timeout, "timeout"},
		{"cancelled", ledger.End{At: ended, StopCode: "EssentialContainerExited", ExitCode: code(exitcode.Cancelled)}, true, exitcode.Cancelled, "cancelled"},
		{"no-exit-code", ledger.End{At: ended, StopCode: "TaskStopped", StopReason: "scaled in"}, false, exitcode.LostRunner, "without an exit record"},
		{"never-started", ledger.End{At: ended, StopCode: "TaskFailedToStart", StopReason: "CannotPullContainerError"}, false, exitcode.StartFailed, "CannotPullContainerError"},
	} {
		runID := protocol.NewRunID(ended.Add(time.Duration(i) * time.Millisecond))
		if err := ledgertest.Reach(ctx, store, runID, "web", ledger.Accepted, ended); err != nil {
			t.Fatal(err)
		}
		if c.cancel {
			if err := store.AskCancel(ctx, runID, "arn:aws:iam::111111111111:user/u", ended); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.Finish(ctx, runID, c.end); err != nil {
			t.Fatal(err)
		}
		for _, attach := range []bool{true, false} {
			var out, errb bytes.Buffer
			f := &logFollower{app: newApp(func(string) string { return "" }, strings.NewReader(""), &out, &errb, nil), attach: attach, follow: true,
				h: h, logs: logs, cli: &logsCLI{RunID: runID, LogGroup: "/deploy-broker/runs", Poll: 10 * time.Millisecond, LostAfter: 3 * time.Minute},
				atStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
			err := f.run(ctx)
			f.app.flush()
			msg := errb.String()
			if err != nil {
				msg += err.Error()
			}
			want := c.want
			if !attach {
				want = 0 // logs --follow: the log is over
			}
			if exitcode.Code(err) != want || !strings.Contains(msg, "ended ("+ledger.Outcome(mustGet(t, h, runID).item)) || (attach && !strings.Contains(msg, c.say)) {
				t.Errorf("%s, attach %v: code %d, want %d; said %q", c.name, attach, exitcode.Code(err), want, msg)
			}
		}
	}
}

func mustGet(t *testing.T, h historyReader, runID string) historyRun {
	t.Helper()
	r, ok, err := h.get(context.Background(), runID)
	if err != nil || !ok {
		t.Fatalf("run %s: %v %v", runID, ok, err)
	}
	return r
}
