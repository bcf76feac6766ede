package trigger

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// publishLog wraps the trigger's SNS client: it records when each request
// kind's publish starts and ends, and can hold cancel publishes back.
type publishLog struct {
	snsAPI
	mu          sync.Mutex
	events      []string
	cancelDelay time.Duration
}

func (p *publishLog) Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error) {
	r, _ := protocol.DecodeRequest([]byte(aws.ToString(in.Message)))
	kind := "?"
	if r != nil {
		kind = string(r.Kind)
	}
	p.log(kind + " start")
	if kind == string(protocol.KindCancel) && p.cancelDelay > 0 {
		select {
		case <-time.After(p.cancelDelay):
		case <-ctx.Done():
			p.log(kind + " abandoned")
			return nil, ctx.Err()
		}
	}
	out, err := p.snsAPI.Publish(ctx, in, opts...)
	p.log(kind + " end")
	return out, err
}

func (p *publishLog) log(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, s)
}

func (p *publishLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.events, ", ")
}

// withPublishLog makes startTrigger's tune wrap the SNS client in p.
func withPublishLog(p *publishLog, more ...func(*app)) func(*app) {
	return func(a *app) {
		a.wrap = func(c clients) clients {
			p.snsAPI = c.sns
			c.sns = p
			return c
		}
		for _, f := range more {
			f(a)
		}
	}
}

// runRequest returns the next run request, skipping the cancels and
// releases earlier triggers on a shared broker published.
func runRequest(ctx context.Context, t *testing.T, b *scriptedBroker) *protocol.Request {
	t.Helper()
	for {
		r := b.request(ctx)
		if r == nil {
			t.Fatal("no run request")
		}
		if r.Kind == protocol.KindRun {
			return r
		}
	}
}

// wantCancelThenRelease checks that the trigger published a cancel, that it
// was done before the release started, and that the message says so.
func wantCancelThenRelease(t *testing.T, p *publishLog, err error) {
	t.Helper()
	if got, want := p.String(), "run start, run end, cancel start, cancel end, release start, release end"; got != want {
		t.Errorf("publishes: %s\nwant:      %s", got, want)
	}
	if !strings.Contains(err.Error(), "sent a cancel so it does not run unattended") {
		t.Errorf("the message does not say a cancel was sent: %v", err)
	}
}

// The runner goes silent: 243, and the trigger cancels the run before
// releasing its queue, so the job does not deploy with nobody watching.
func giveUpLostRunnerCancels(ctx context.Context, t *testing.T, b *scriptedBroker) {
	p := &publishLog{}
	tr := startTrigger(ctx, b.env(), withPublishLog(p), "--missed-heartbeats", "2", "website")
	req := runRequest(ctx, t, b)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 1))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.LostRunner || !strings.Contains(err.Error(), "no heartbeat for 2s") {
		t.Fatalf("code %d (%v)", code, err)
	}
	wantCancelThenRelease(t, p, err)
	for _, kind := range []protocol.Kind{protocol.KindCancel, protocol.KindRelease} { // as the broker gets them
		if r := b.request(ctx); r == nil || r.Kind != kind || r.RunID != req.RunID {
			t.Fatalf("want %s, got %+v", kind, r)
		}
	}
}

// Accepted, but the task is slow to start: 246, and a cancel goes out.
func giveUpStartTimeoutCancels(ctx context.Context, t *testing.T, b *scriptedBroker) {
	p := &publishLog{}
	tr := startTrigger(ctx, b.env(), withPublishLog(p), "--start-timeout", "2s", "website")
	req := runRequest(ctx, t, b)
	// Issue 14.5: the request expires no later than the trigger stops
	// waiting for it, so a broker that picks it up after that refuses it.
	if life := req.ExpiresAt.Sub(req.RequestedAt); life > 2*time.Second {
		t.Errorf("the request lives %s, longer than the 2s start timeout", life)
	}
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), task(2, "PENDING", "", ""))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.StartTimeout || !strings.Contains(err.Error(), "the task was last PENDING") {
		t.Fatalf("code %d (%v)", code, err)
	}
	wantCancelThenRelease(t, p, err)
}

// faultySQS fails every ReceiveMessage with a non-retryable error once
// armed.
type faultySQS struct {
	sqsAPI
	armed chan struct{}
}

func (f *faultySQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	select {
	case <-f.armed:
		return nil, &smithy.GenericAPIError{Code: "InternalFailure", Message: "the service is broken"}
	default:
	}
	return f.sqsAPI.ReceiveMessage(ctx, in, opts...)
}

// Reading the queue fails for good while the job runs: 247, and a cancel.
func giveUpReceiveErrorCancels(ctx context.Context, t *testing.T, b *scriptedBroker) {
	p := &publishLog{}
	f := &faultySQS{armed: make(chan struct{})}
	tr := startTrigger(ctx, b.env(), withPublishLog(p, func(a *app) {
		inner := a.wrap
		a.wrap = func(c clients) clients {
			c = inner(c)
			f.sqsAPI = c.sqs
			c.sqs = f
			return c
		}
	}), "website")
	req := runRequest(ctx, t, b)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), output(2, out("working")))
	waitFor(t, func() bool { return strings.Contains(tr.stdout.String(), "working") })
	close(f.armed)
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Broker || !strings.Contains(err.Error(), "reading run queue") {
		t.Fatalf("code %d (%v)", code, err)
	}
	wantCancelThenRelease(t, p, err)
}

// The paths that already cancelled (wrong account, --timeout) do it in the
// same order: the cancel is done before the release starts.
func giveUpWrongAccountAndTimeoutOrder(ctx context.Context, t *testing.T, b *scriptedBroker) {

	p := &publishLog{cancelDelay: 500 * time.Millisecond}
	tr := startTrigger(ctx, b.env(), withPublishLog(p), "website")
	req := runRequest(ctx, t, b)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("999999999999"))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Safety {
		t.Fatalf("code %d (%v)", code, err)
	}
	wantCancelThenRelease(t, p, err)

	p2 := &publishLog{cancelDelay: 500 * time.Millisecond}
	tr2 := startTrigger(ctx, b.env(), withPublishLog(p2), "--timeout", "2s", "website")
	req2 := runRequest(ctx, t, b)
	url2 := b.queue(ctx, req2.RunID)
	b.send(ctx, url2, req2.RunID, accepted("123456789012"), started(1, 5))
	err = tr2.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Timeout || !strings.Contains(err.Error(), "the trigger's time limit") {
		t.Fatalf("code %d (%v)", code, err)
	}
	wantCancelThenRelease(t, p2, err)
}

// Outcomes where nothing runs any more send no cancel: the exit record,
// a rejection, ECS's STOPPED.
func giveUpNoCancelWhenTheRunIsOver(ctx context.Context, t *testing.T, b *scriptedBroker) {
	for _, c := range []struct {
		name string
		recs []protocol.Record
		code int
	}{
		{"exit", []protocol.Record{accepted("123456789012"), started(1, 5), exitRec(2, 3, protocol.ReasonCompleted)}, 3},
		{"rejected", []protocol.Record{rejected(protocol.RejectUnknownJob, "no")}, exitcode.Rejected},
		{"stopped", []protocol.Record{accepted("123456789012"), task(3, "STOPPED", "TaskFailedToStart", "CannotPullContainerError")}, exitcode.StartFailed},
	} {
		p := &publishLog{}
		tr := startTrigger(ctx, b.env(), withPublishLog(p), "website")
		req := runRequest(ctx, t, b)
		url := b.queue(ctx, req.RunID)
		b.send(ctx, url, req.RunID, c.recs...)
		err := tr.wait(t, 20*time.Second)
		if code := codeOf(err); code != c.code {
			t.Fatalf("%s: code %d (%v)", c.name, code, err)
		}
		if got := p.String(); got != "run start, run end, release start, release end" {
			t.Errorf("%s: publishes %s", c.name, got)
		}
	}
}

// A slow cancel publish does not hold the event loop: records keep
// printing while it is on its way, a second signal leaves within leaveWait,
// and the trigger says the cancel may not have gone out.
func cancelPublishDoesNotBlock(ctx context.Context, t *testing.T, b *scriptedBroker) {
	p := &publishLog{cancelDelay: 10 * time.Second}
	tr := startTrigger(ctx, b.env(), withPublishLog(p, func(a *app) { a.leaveWait = 300 * time.Millisecond }), "website")
	req := runRequest(ctx, t, b)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5))
	waitFor(t, func() bool { return strings.Contains(tr.stderr.String(), "job started") })
	tr.signals <- os.Interrupt
	waitFor(t, func() bool { return strings.Contains(p.String(), "cancel start") })
	b.send(ctx, url, req.RunID, output(2, out("still printing")))
	waitFor(t, func() bool { return strings.Contains(tr.stdout.String(), "still printing") })
	begin := time.Now()
	tr.signals <- os.Interrupt
	// The cancel publish takes 10 s: ending well before it proves the run
	// did not wait for it (the bound leaves room for a loaded machine; how
	// soon after leaveWait it ends is a matter of scheduling).
	err := tr.wait(t, 9*time.Second)
	if took := time.Since(begin); took > 8*time.Second {
		t.Errorf("the second signal took %s to end the run (the cancel publish takes 10 s)", took)
	}
	if code := codeOf(err); code != exitcode.Cancelled || !strings.Contains(err.Error(), "left at once") || !strings.Contains(err.Error(), "may not have gone out") {
		t.Fatalf("code %d (%v)", code, err)
	}
	if strings.Contains(p.String(), "release") {
		t.Errorf("released after leaving at once: %s", p)
	}
}

// The exit record arrives while the cancel is still being published: the
// release waits for the cancel publish to finish.
func releaseWaitsForCancelInFlight(ctx context.Context, t *testing.T, b *scriptedBroker) {
	p := &publishLog{cancelDelay: 1500 * time.Millisecond}
	tr := startTrigger(ctx, b.env(), withPublishLog(p), "website")
	req := runRequest(ctx, t, b)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5))
	waitFor(t, func() bool { return strings.Contains(tr.stderr.String(), "job started") })
	tr.signals <- os.Interrupt
	waitFor(t, func() bool { return strings.Contains(p.String(), "cancel start") })
	e := exitRec(2, -1, protocol.ReasonCancelled)
	e.Exit.Signal = 15 // SIGTERM
	b.send(ctx, url, req.RunID, e)
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Cancelled {
		t.Fatalf("code %d (%v)", code, err)
	}
	if got, want := p.String(), "run start, run end, cancel start, cancel end, release start, release end"; got != want {
		t.Errorf("publishes: %s\nwant:      %s", got, want)
	}
}

// A gap in the runner's records does not stall the output while later
// records (heartbeats) keep coming: after gapWait the trigger gives up on it,
// warns, and prints on.
func gapExpiresWhileRecordsFlow(ctx context.Context, t *testing.T, b *scriptedBroker) {
	tr := startTrigger(ctx, b.env(), func(a *app) { a.gapWait = time.Second }, "website")
	req := runRequest(ctx, t, b)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), output(2, out("before")))
	b.send(ctx, url, req.RunID, output(4, out("after the gap")))
	hb := func(seq uint64) protocol.Record {
		r := rec(protocol.SourceRunner, seq)
		r.Type, r.Heartbeat = protocol.TypeHeartbeat, &protocol.Heartbeat{}
		return r
	}
	begin := time.Now()
	seq := uint64(5)
	for ; !strings.Contains(tr.stdout.String(), "after the gap"); seq++ {
		if time.Since(begin) > 10*time.Second {
			t.Fatalf("output still stalled after %s\nstderr:\n%s", time.Since(begin), tr.stderr)
		}
		b.send(ctx, url, req.RunID, hb(seq))
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(tr.stderr.String(), "runner records 3–3 never arrived") {
		t.Errorf("no warning about the gap:\n%s", tr.stderr)
	}
	b.send(ctx, url, req.RunID, output(3, out("too late")), exitRec(seq, 0, protocol.ReasonCompleted))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != 0 {
		t.Fatalf("code %d (%v)\n%s", code, err, tr.stderr)
	}
	if got := tr.stdout.String(); got != "before\nafter the gap\n" {
		t.Errorf("stdout %q", got)
	}
}

// The give-up paths share one broker (a moto server each is the expensive
// part); each trigger run gets its own run id and queue.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	for _, c := range []struct {
		name string
		f    func(context.Context, *testing.T, *scriptedBroker)
	}{
		{"LostRunnerCancels", giveUpLostRunnerCancels},
		{"StartTimeoutCancels", giveUpStartTimeoutCancels},
		{"ReceiveErrorCancels", giveUpReceiveErrorCancels},
		{"WrongAccountAndTimeoutOrder", giveUpWrongAccountAndTimeoutOrder},
		{"NoCancelWhenTheRunIsOver", giveUpNoCancelWhenTheRunIsOver},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.f(ctx, t, b)
		})
	}
}

func TestCancelAndGaps(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	for _, c := range []struct {
		name string
		f    func(context.Context, *testing.T, *scriptedBroker)
	}{
		{"CancelPublishDoesNotBlock", cancelPublishDoesNotBlock},
		{"ReleaseWaitsForCancelInFlight", releaseWaitsForCancelInFlight},
		{"GapExpiresWhileRecordsFlow", gapExpiresWhileRecordsFlow},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.f(ctx, t, b)
		})
	}
}
