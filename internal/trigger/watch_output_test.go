package trigger

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// closedPipe is a stdout whose reader has gone.
type closedPipe struct{}

func (closedPipe) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// With its output closed the run goes on, unprinted and not cancelled;
// Ctrl-C still cancels it (245).
func TestScriptedClosedOutputThenCtrlCCancels(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	// A hang guard only: the steps take about 2 s alone; a fresh-clone
	// suite on a loaded 2-core machine once took the whole of 30 s here.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stderr *testutil.SyncBuffer
	tr := startTrigger(ctx, b.env(), func(a *app) {
		stderr = &testutil.SyncBuffer{}
		a.out = newOrderedOutput(closedPipe{}, stderr)
		a.stdout, a.stderr = a.out.stdout(), a.out.stderr()
	}, "--output", "plain", "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), output(2, out("working")))
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "the output closed") })
	short, done := context.WithTimeout(ctx, time.Second)
	if r := b.tryRequest(short); r != nil {
		t.Fatalf("the closed output sent %+v; the run must go on", r)
	}
	done()
	tr.signals <- os.Interrupt
	if c := b.request(ctx); c == nil || c.Kind != protocol.KindCancel || c.RunID != req.RunID {
		t.Fatalf("want a cancel request after Ctrl-C, got %+v", c)
	}
	e := exitRec(3, -1, protocol.ReasonCancelled)
	e.Exit.Signal = 15
	b.send(ctx, url, req.RunID, e)
	if code := codeOf(tr.wait(t, 20*time.Second)); code != exitcode.Cancelled {
		t.Fatalf("code %d, want 245\n%s", code, stderr.String())
	}
	if n := strings.Count(stderr.String(), "the output closed"); n != 1 {
		t.Errorf("said %d times that the output closed:\n%s", n, stderr.String())
	}
}
