package trigger

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// cancelResult is how one background cancel publish ended.
type cancelResult struct {
	err         error
	afterAccept bool // it was sent after the accepted record had arrived
}

// cancelPublishTimeout bounds one cancel publish (the SDK retries within it).
const cancelPublishTimeout = 20 * time.Second

func (w *watch) onSignal(ctx context.Context, sig os.Signal) error {
	if w.cancelAt.IsZero() {
		w.cancel(ctx, fmt.Sprintf("%v received", sig))
		return nil
	}
	// A second signal leaves at once, but a cancel request still on its way
	// gets a moment to go out (a third signal does not wait for it).
	if w.cancelCh != nil {
		w.cancelAgain = false
		select {
		case r := <-w.cancelCh:
			w.cancelPublished(ctx, r, true)
		case <-w.set.signals:
		case <-time.After(w.set.leaveWait):
		}
	}
	w.leftAtOnce = true
	state := "the cancel request was sent"
	switch {
	case w.cancelCh != nil:
		state = "the cancel request was still being sent and may not have gone out"
	case w.cancelErr != nil:
		state = "the cancel request could not be sent (" + w.cancelErr.Error() + ")"
	}
	return exitcode.Errorf(exitcode.Cancelled, "run %s: left at once on a second %v; %s, the task may still be stopping", w.runID, sig, state)
}

// cancel starts the grace clock and publishes a cancel request.
func (w *watch) cancel(ctx context.Context, why string) {
	if w.cancelAt.IsZero() {
		w.cancelAt = w.set.now()
	}
	if w.accepted == nil {
		w.recancel = true
	}
	if why != "" {
		w.out.notice(fmt.Sprintf("%s: cancelling run %s (waiting up to %s for the job to stop; interrupt again to leave at once)", why, w.runID, w.cfg.CancelGrace))
	}
	w.sendCancel(ctx)
}

// sendCancel publishes a cancel request in the background, so that the
// event loop keeps reading signals and records meanwhile; the loop reads the
// outcome from cancelCh. One publish at a time: asked again while one is in
// flight, it sends another once that one is done.
func (w *watch) sendCancel(ctx context.Context) {
	if w.cancelCh != nil {
		w.cancelAgain = true
		return
	}
	ch := make(chan cancelResult, 1)
	w.cancelCh = ch
	req := newRequest(protocol.KindCancel, w.runID, w.set.now(), w.cfg.RequestTTL)
	afterAccept := w.accepted != nil
	pctx, done := context.WithTimeout(context.WithoutCancel(ctx), cancelPublishTimeout)
	go func() {
		defer done()
		ch <- cancelResult{err: publish(pctx, w.c, w.cfg.Topic, req), afterAccept: afterAccept}
	}()
}

// cancelPublished takes the outcome of a background cancel publish.
func (w *watch) cancelPublished(ctx context.Context, r cancelResult, quiet bool) {
	w.cancelCh = nil
	w.cancelErr = r.err
	if r.err == nil && r.afterAccept {
		w.cancelOK = true
	}
	if r.err != nil && !quiet {
		w.out.notice("could not send the cancel request: " + r.err.Error())
	}
	if w.cancelAgain {
		w.cancelAgain = false
		w.sendCancel(ctx)
	}
}

// mayBeRunning reports whether the run's job may still be going (or still
// start) when the trigger stops watching it: true unless the runner's exit
// record arrived, the broker rejected the run, or ECS reported the task
// STOPPED.
func (w *watch) mayBeRunning() bool {
	return !w.exited && !w.rejected && (w.lastTask == nil || w.lastTask.Status != "STOPPED")
}

// settle ends the tail with err. When the trigger gives up on a run that
// may still be going, it sends a cancel (unless one already went out after
// the run was accepted), so that the job does not run on with nobody
// watching after the trigger has reported a failure, and says so in the
// error. It waits for every cancel request in flight, so that the release
// (which deletes the run queue) is never published before a cancel: a
// signal meanwhile leaves at once.
func (w *watch) settle(ctx context.Context, err error) error {
	if w.leftAtOnce {
		return err
	}
	need := w.mayBeRunning()
	sent := false
	for {
		if w.cancelCh == nil {
			if !need || w.cancelOK || sent {
				break
			}
			w.sendCancel(ctx)
			sent = true
		}
		select {
		case r := <-w.cancelCh:
			w.cancelPublished(ctx, r, true)
		case sig := <-w.set.signals:
			w.leftAtOnce = true
			return annotate(err, fmt.Sprintf("; left at once on %v while the cancel request was being sent: it may not have gone out, and the job may run on unattended", sig))
		}
	}
	switch {
	case !sent:
		return err
	case w.cancelErr == nil:
		return annotate(err, "; sent a cancel so it does not run unattended")
	}
	return annotate(err, "; the cancel request could not be sent, so the job may run on unattended: stop it in the target account ("+w.cancelErr.Error()+")")
}

// annotate appends note to err's message, keeping its exit code.
func annotate(err error, note string) error {
	return exitcode.New(exitcode.Code(err), fmt.Errorf("%w%s", err, note))
}

func (w *watch) cancelRequested() bool { return !w.cancelAt.IsZero() }
