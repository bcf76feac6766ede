package trigger

import (
	"context"
	"fmt"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
)

// onTick checks the run's clocks: an expired one ends the run.
func (w *watch) onTick(ctx context.Context) error {
	now := w.set.now()
	w.out.tick(now)
	hb := w.heartbeatLimit()
	switch {
	case !w.stoppedAt.IsZero() && !now.Before(w.stopDeadline()):
		if err := w.flushGaps(ctx); err != nil {
			return err
		}
		return w.stoppedOutcome()
	case w.stoppedAt.IsZero() && !w.lastRunner.IsZero() && now.Sub(w.lastRunner) >= hb:
		if err := w.flushGaps(ctx); err != nil {
			return err
		}
		if w.cancelRequested() {
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled; the runner went silent without reporting its exit", w.runID)
		}
		return exitcode.Errorf(exitcode.LostRunner, "lost the runner of run %s: no heartbeat for %s%s", w.runID, hb.Round(time.Second), w.taskNote())
	case w.cancelRequested() && now.Sub(w.cancelAt) >= w.cfg.CancelGrace:
		return exitcode.Errorf(exitcode.Cancelled, "run %s: cancel requested, but the job did not report stopping within %s; the task may still be stopping", w.runID, w.cfg.CancelGrace)
	case w.queueURL == "" && !w.heardAny && w.cfg.QueueTimeout > 0 && now.Sub(w.published) >= min(w.cfg.QueueTimeout, w.cfg.StartTimeout):
		// Nothing answered at all: the dispatcher makes the run's queue
		// first thing after verifying the request, so none means it
		// refused or never saw the request.
		return exitcode.Errorf(exitcode.StartTimeout, "%s", noQueueReason(w.runID, min(w.cfg.QueueTimeout, w.cfg.StartTimeout), w.cfg.Topic, w.signer))
	case w.lastRunner.IsZero() && now.Sub(w.published) >= w.cfg.StartTimeout:
		return exitcode.Errorf(exitcode.StartTimeout, "run %s did not start within %s: %s", w.runID, w.cfg.StartTimeout, w.lastKnown())
	}
	w.sayWhatItWaitsFor(now)
	if d := w.overallDeadline(); !d.IsZero() && now.After(d) {
		// settle sends the cancel.
		return exitcode.Errorf(exitcode.Timeout, "run %s was still going after %s, the trigger's time limit: gave up", w.runID, now.Sub(w.published).Round(time.Second))
	}
	if w.seq.waiting() {
		// Output held behind a gap for longer than a late message can
		// take: give up on the gap so that the rest flows.
		ready, missing := w.seq.expire(now.Add(-w.set.gapWait))
		return w.release(ctx, ready, missing)
	}
	return nil
}

// stopDeadline is until when to keep listening for the runner's exit record
// once ECS has reported the task STOPPED without one having arrived.
//
// In SQS the runner's records come before ECS's STOPPED on the run's FIFO
// message group, but a message whose receive answer was lost comes back
// only after its visibility timeout, and (in the emulator at least) after
// later ones. So "no gap seen" proves nothing: what the task's end says
// decides how long to wait.
func (w *watch) stopDeadline() time.Time {
	t := w.lastTask
	switch {
	case t.StopCode == "TaskFailedToStart" || (t.ExitCode == nil && !w.everRunning && w.lastRunner.IsZero()):
		return w.stoppedAt // the runner never ran: nothing can come
	case t.ExitCode == nil || *t.ExitCode == exitcode.Broker || *t.ExitCode == exitcode.Usage:
		// Killed without a code, or the runner said it could not deliver
		// (247) or had no configuration (240): only records already on
		// their way can come.
		return w.stoppedAt.Add(w.set.stopGrace)
	}
	// The runner ended with a code, which it does after delivering its exit
	// record: wait for it, as long as a redelivered message can take, but
	// never past the heartbeat watchdog once the runner has been heard.
	end := w.stoppedAt.Add(w.set.exitWait)
	if !w.lastRunner.IsZero() {
		if hb := w.lastRunner.Add(w.heartbeatLimit()); hb.Before(end) {
			end = hb
		}
	}
	return end
}

// heartbeatLimit is how long the runner may stay silent: --missed-heartbeats
// intervals when given; by default autoMissedHeartbeats intervals, but never
// less than minSilence.
func (w *watch) heartbeatLimit() time.Duration {
	iv := 10 * time.Second
	if w.started != nil && w.started.HeartbeatSeconds > 0 {
		iv = time.Duration(w.started.HeartbeatSeconds) * time.Second
	}
	if w.cfg.MissedHeartbeats > 0 {
		return time.Duration(w.cfg.MissedHeartbeats) * iv
	}
	return max(autoMissedHeartbeats*iv, minSilence)
}

// The default silence limit. A runner whose sends fail (SQS throttling, 5xx,
// a dropped connection) retries one request for up to its send timeout
// (DEPLOY_BROKER_SEND_TIMEOUT, 2m by default), the last attempt bounded by
// 30 s, and no heartbeat can overtake that request; a message whose receive
// answer was lost comes back after receiveVisibility. The runner is only
// declared lost once all of that has passed with time to spare, so that
// throttling the runner rides out never ends the run.
const (
	autoMissedHeartbeats = 4
	runnerSendTimeout    = 2 * time.Minute  // internal/runner DefaultSendTimeout
	runnerCallTimeout    = 30 * time.Second // internal/runner's bound on one send call
	minSilence           = runnerSendTimeout + runnerCallTimeout + receiveVisibility + 20*time.Second
)

func (w *watch) overallDeadline() time.Time {
	if w.cfg.Timeout > 0 {
		return w.published.Add(w.cfg.Timeout)
	}
	if w.started != nil && w.started.DeadlineUnixMilli > 0 {
		return time.UnixMilli(w.started.DeadlineUnixMilli).Add(5 * time.Minute)
	}
	return time.Time{}
}

// noAnswerNotice is how long the trigger waits in silence for the broker's
// first answer (the run queue) before it says what it waits for: the
// broker answers within seconds, and one that refused the request's proof
// of identity never does (it cannot answer an unverified sender).
const noAnswerNotice = 10 * time.Second

// sayWhatItWaitsFor says once, when the broker has not answered for
// noAnswerNotice, what the trigger waits for and what silence means.
func (w *watch) sayWhatItWaitsFor(now time.Time) {
	if w.waitSaid || w.queueURL != "" || w.heardAny || now.Sub(w.published) < noAnswerNotice {
		return
	}
	w.waitSaid = true
	limit := w.cfg.StartTimeout
	if w.cfg.QueueTimeout > 0 {
		limit = min(w.cfg.QueueTimeout, w.cfg.StartTimeout)
	}
	w.out.notice(noAnswerMessage(w.runID, limit, w.who()))
}

// noAnswerMessage says what the trigger waits for while the broker is
// silent, until limit, and what silence means.
func noAnswerMessage(runID string, limit time.Duration, who string) string {
	return fmt.Sprintf("no answer yet after %s: waiting for the broker to create the queue of run %s (it answers within seconds once it has verified the request), until %s; "+
		"a broker that refused the request's proof of identity never answers: then %s is not among its trusted principals, or the topic is not its own, or it is older than this deploy-trigger",
		noAnswerNotice, runID, limit, who)
}

// who is the principal the request was signed as, when STS said.
func (w *watch) who() string {
	if w.signer != "" {
		return w.signer
	}
	return "this principal"
}
