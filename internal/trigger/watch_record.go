package trigger

import (
	"context"
	"fmt"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// onRecord handles one record, in sequence order: it prints it and updates
// what is known of the run. A record that ends the run returns its outcome.
func (w *watch) onRecord(ctx context.Context, r protocol.Record) error {
	if r.Type == protocol.TypeOutput {
		r = w.decodableLines(r)
	}
	if err := w.out.record(r); err != nil {
		w.outputFailed(ctx, err)
	}
	switch r.Type {
	case protocol.TypeRejected:
		w.rejected = true
		if r.Rejected.Code == protocol.RejectCancelled {
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled before the broker started it: %s", w.runID, r.Rejected.Reason)
		}
		return exitcode.Errorf(exitcode.Rejected, "the broker rejected the run (%s): %s", r.Rejected.Code, r.Rejected.Reason)
	case protocol.TypeQueued:
		w.waiting, w.awaitingApproval = true, len(r.Queued.Approvers) > 0
		return w.detachHere() // --detach: watch_detach.go
	case protocol.TypeAccepted:
		w.accepted = r.Accepted
		if r.Accepted.Account != w.expect {
			// settle sends the cancel.
			return exitcode.Errorf(exitcode.Safety, "the broker accepted the run in account %s, but %s was expected: stopped; check the topic ARN and the environment", r.Accepted.Account, w.expect)
		}
		if w.cfg.AccountAlias != "" && r.Accepted.AccountAlias != "" && r.Accepted.AccountAlias != w.cfg.AccountAlias {
			w.out.notice(fmt.Sprintf("warning: account %s calls itself %q, not %q as the environment says", r.Accepted.Account, r.Accepted.AccountAlias, w.cfg.AccountAlias))
		}
		if a := r.Accepted; a.Start == protocol.StartCold && a.Warm > 0 {
			w.out.notice(fmt.Sprintf("no warm runner of %s was free (%d busy): started a new task, expect a cold start", a.Job, a.WarmBusy))
		}
		if w.recancel {
			w.recancel = false
			w.cancel(ctx, "")
		}
		return w.detachHere() // --detach: watch_detach.go
	case protocol.TypeTask:
		w.lastTask = r.Task
		if r.Task.Status == "RUNNING" {
			w.everRunning = true
		}
		if r.Task.Status == "STOPPED" && w.stoppedAt.IsZero() {
			w.stoppedAt = w.set.now()
		}
	case protocol.TypeStarted:
		w.started = r.Started
		w.startedAt = w.set.now()
		w.everRunning = true
	case protocol.TypeOutput:
		for _, l := range r.Output.Lines {
			if !l.Cont {
				w.lines++
			}
			w.bytes += int64(len(l.Text) + len(l.B64)*3/4)
		}
	case protocol.TypeExit:
		w.exited = true
		return w.exitOutcome(r.Exit)
	}
	return nil
}

// decodableLines returns r without the line pieces whose bytes cannot be
// decoded (bad base64), each reported as a warning: one bad piece must not
// end the run. A bad piece that ended a line already begun is replaced by
// an empty one, so the line still ends where the job ended it.
func (w *watch) decodableLines(r protocol.Record) protocol.Record {
	var kept []protocol.Line
	bad := false
	for i, l := range r.Output.Lines {
		if err := l.Check(); err != nil {
			if !bad {
				kept = append(kept, r.Output.Lines[:i]...)
				bad = true
			}
			w.out.notice(fmt.Sprintf("warning: runner record %d: skipped line piece %d of %s, which cannot be decoded (%v)", r.Seq, i+1, l.Stream, err))
			if l.Cont || !w.openLine[l.Stream] {
				continue
			}
			l = protocol.Line{Stream: l.Stream, Millis: l.Millis}
		}
		if w.openLine[l.Stream] != l.Cont {
			w.openLine[l.Stream] = l.Cont
		}
		if bad {
			kept = append(kept, l)
		}
	}
	if !bad {
		return r
	}
	out := *r.Output
	out.Lines = kept
	r.Output = &out
	return r
}

// flushGaps gives up waiting for missing runner records and prints what
// arrived; an exit record among them decides the outcome.
func (w *watch) flushGaps(ctx context.Context) error {
	if !w.seq.waiting() {
		return nil
	}
	ready, missing := w.seq.flush()
	return w.release(ctx, ready, missing)
}

// release reports the runner records given up on and handles the records
// the sequencer released, in order.
func (w *watch) release(ctx context.Context, ready []protocol.Record, missing [][2]uint64) error {
	for _, m := range missing {
		w.out.notice(fmt.Sprintf("warning: runner records %d–%d never arrived; some output is missing", m[0], m[1]))
	}
	for _, r := range ready {
		if err := w.onRecord(ctx, r); err != nil {
			return err
		}
	}
	return nil
}
