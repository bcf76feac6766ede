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

// Every status of the ledger (ledger.Statuses), written by the
// dispatcher's own methods into moto's table, through every reader of the
// trigger: runs (list, plain and JSON), show (get, plain and JSON), logs and
// attach. A status nobody planned for here fails the test (it would have
// caught attach exiting 242 on a queued run). attach on a run that has not
// ended follows it: TestAttachWaitsForAWaitingRunToStart covers that.
func TestEveryStatusThroughTheTriggersReaders(t *testing.T) {
	want := map[ledger.Status]struct{ logs, attach int }{ // -1: attach follows on
		ledger.Launching:        {0, -1},
		ledger.Queued:           {0, -1},
		ledger.AwaitingApproval: {0, -1},
		ledger.Accepted:         {0, -1},
		ledger.Stopped:          {0, 0}, // no run log: the ledger says it succeeded (exit code 0; --lost-after 0)
		ledger.Rejected:         {exitcode.Rejected, exitcode.Rejected},
		ledger.Abandoned:        {exitcode.StartFailed, exitcode.StartFailed},
		ledger.Cancelled:        {exitcode.Cancelled, exitcode.Cancelled},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, db, cfg := ledgertest.New(t)
	logs := cloudwatchlogs.NewFromConfig(cfg)
	h := historyReader{db: db, table: ledgertest.Table}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, st := range ledger.Statuses() {
		w, ok := want[st]
		if !ok {
			t.Fatalf("status %s: what should runs, show, logs and attach do with it? add it here", st)
		}
		runID := protocol.NewRunID(now.Add(time.Duration(i) * time.Millisecond))
		if err := ledgertest.Reach(ctx, store, runID, "web", st, now); err != nil {
			t.Fatal(err)
		}
		outcome := ledger.Outcome(ledger.Item{Status: st})
		if st == ledger.Stopped {
			outcome = ledger.OutcomeSucceeded // Reach stops it with exit code 0
		}
		list, err := h.list(ctx, &runsCLI{Job: "web", Limit: 100}, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var listed *historyRun
		for i := range list {
			if list[i].RunID == runID {
				listed = &list[i]
			}
		}
		if listed == nil || listed.Outcome != outcome || listed.Status != string(st) {
			t.Fatalf("status %s: runs lists %+v, want outcome %s", st, listed, outcome)
		}
		shown, found, err := h.get(ctx, runID)
		if err != nil || !found || shown.Outcome != outcome {
			t.Fatalf("status %s: show finds %+v (%v, %v)", st, shown, found, err)
		}
		for _, mode := range []string{"plain", "json"} {
			var b bytes.Buffer
			printRuns(&b, mode, []historyRun{*listed})
			printRun(&b, mode, shown)
			if strings.Count(b.String(), runID) < 2 || !strings.Contains(b.String(), outcome) {
				t.Errorf("status %s, -o %s: printed %q", st, mode, b.String())
			}
		}
		for _, attach := range []bool{false, true} {
			code := w.logs
			if attach {
				code = w.attach
			}
			if code < 0 {
				continue
			}
			var out, errb bytes.Buffer
			f := &logFollower{app: newApp(func(string) string { return "" }, strings.NewReader(""), &out, &errb, nil), attach: attach, follow: attach,
				h: h, logs: logs, cli: &logsCLI{RunID: runID, LogGroup: "/deploy-broker/runs", Poll: time.Millisecond},
				atStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
			if err := f.run(ctx); exitcode.Code(err) != code {
				t.Errorf("status %s, attach %v: code %d (%v), want %d; stderr %q", st, attach, exitcode.Code(err), err, code, errb.String())
			}
		}
	}
}
