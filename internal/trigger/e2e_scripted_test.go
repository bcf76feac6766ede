package trigger

import (
	"context"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestScriptedJobExitCodePassesThrough(t *testing.T) {
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website", "version=1.4.2")
	req := b.request(ctx)
	if req == nil {
		t.Fatal("no request")
	}
	if req.Job != "website" || req.Params["version"] != "1.4.2" || req.Kind != protocol.KindRun {
		t.Fatalf("request = %+v", req)
	}
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"))
	b.send(ctx, url, req.RunID, started(1, 5), output(2, out("hello"), errl("warn")))
	b.send(ctx, url, req.RunID, output(3, out("bye")), exitRec(4, 3, protocol.ReasonCompleted))
	err := tr.wait(t, 20*time.Second)
	if got := exitcode.Code(err); got != 3 {
		t.Fatalf("exit code = %d (%v), want 3\nstderr:\n%s", got, err, tr.stderr)
	}
	if got, want := tr.stdout.String(), "hello\nbye\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	rel := b.request(ctx)
	if rel == nil || rel.Kind != protocol.KindRelease || rel.RunID != req.RunID {
		t.Errorf("release = %+v", rel)
	}
}

func TestScriptedRejected(t *testing.T) {
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "nosuch")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, rejected(protocol.RejectUnknownJob, `job "nosuch" is not in the catalogue`))
	err := tr.wait(t, 20*time.Second)
	if got := exitcode.Code(err); got != exitcode.Rejected {
		t.Fatalf("exit code = %d (%v), want 241", got, err)
	}
	t.Log(tr.stderr.String())
}
