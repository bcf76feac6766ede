package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// DecisionDenied is the audit decision for a cancel or release from a
// verified principal that may not control the run: nothing is done.
const DecisionDenied = "denied"

// handleCancel stops the run's task, if p may: the run's requester (any
// session of its role) or an operator. Unknown run ids are harmless. A
// cancel from `deploy-trigger cancel` carries a decision id: its answer
// (cancelled, denied, ignored) goes to the run ledger too (answer).
func (d *Dispatcher) handleCancel(ctx context.Context, req *protocol.Request, p identity.Principal) error {
	a := audit{RunID: req.RunID, Kind: req.Kind, Principal: p.ARN}
	if d.now().After(req.ExpiresAt.Add(d.cfg.Broker.ClockSkew.D())) {
		a.Decision, a.Reason = DecisionIgnored, "cancel request expired"
		d.answer(ctx, req, a)
		return nil
	}
	item, ok, err := d.ledger.Get(ctx, req.RunID)
	if err != nil {
		return d.failed(ctx, a, err)
	}
	if !ok {
		return d.cancelEarly(ctx, req, p, a)
	}
	a.Job = item.Job
	if !d.mayControl(p, item.RequestedBy, item.ControlPattern) {
		a.Decision, a.Reason = DecisionDenied, denyReason(p, "cancel", item)
		d.answer(ctx, req, a)
		return nil
	}
	if item.Status == ledger.Queued || item.Status == ledger.AwaitingApproval {
		return d.cancelQueued(ctx, item, a)
	}
	taskARN := item.TaskARN
	if taskARN == "" {
		if taskARN, err = d.findTask(ctx, req.RunID, false); err != nil {
			return d.failed(ctx, a, err)
		}
	}
	if taskARN == "" {
		if item.Status == ledger.Launching {
			// The task is being started: the launch stops it as soon as it
			// has its ARN (see accept).
			if err := d.ledger.AskCancel(ctx, req.RunID, p.ARN, d.now()); err != nil {
				return d.failed(ctx, a, err)
			}
			a.Decision, a.Reason = DecisionCancelled, "cancel noted; the task is stopped as soon as it is started"
			d.answer(ctx, req, a)
			return nil
		}
		a.Decision, a.Reason = DecisionIgnored, "run has no running task (status "+string(item.Status)+")"
		d.answer(ctx, req, a)
		return nil
	}
	item.CancelledBy = p.ARN
	reason := cancelReason(item)
	if err := d.stopTask(ctx, req.RunID, taskARN, reason, p.ARN); err != nil {
		return d.failed(ctx, a, err)
	}
	a.Decision, a.Reason, a.TaskARN = DecisionCancelled, reason, taskARN
	d.answer(ctx, req, a)
	return nil
}

// cancelEarly handles a cancel for a run the ledger does not know yet: the
// trigger gave up (start timeout) before its run request was handled, and
// that request may still arrive while valid. The cancel claims the run id
// first with a tombstone, so the request, when it comes, finds it claimed
// and launches nothing.
//
// The tombstone records who cancelled: when the run request arrives, a
// tombstone left by a principal that may not control that run is removed
// and the run goes ahead (see redelivered).
func (d *Dispatcher) cancelEarly(ctx context.Context, req *protocol.Request, p identity.Principal, a audit) error {
	return d.closeRunID(ctx, req, p, a, "cancelled before the run request arrived", d.handleCancel)
}

// closeRunID claims a run id the ledger does not know with a tombstone, so
// that its run request, arriving later while still valid, launches nothing.
// When the run request won the race, again handles req the ordinary way.
// The tombstone names p, who closed it (see cancelEarly).
func (d *Dispatcher) closeRunID(ctx context.Context, req *protocol.Request, p identity.Principal, a audit, why string, again func(context.Context, *protocol.Request, identity.Principal) error) error {
	now := d.now()
	born, err := protocol.RunIDTime(req.RunID)
	maxAge, skew := d.cfg.Broker.MaxRequestAge.D(), d.cfg.Broker.ClockSkew.D()
	if err != nil || born.Before(now.Add(-maxAge-skew)) || born.After(now.Add(skew)) {
		// No run request for this id could be accepted any more (or yet).
		a.Decision, a.Reason = DecisionIgnored, "no such run"
		d.write(ctx, a)
		return nil
	}
	err = d.ledger.Claim(ctx, ledger.Item{RunID: req.RunID, Status: ledger.Cancelled, CreatedAt: now, LeaseUntil: now,
		RequestedAt: req.RequestedAt, Reason: why, ClaimToken: ledger.NewToken(), CancelledBy: p.ARN})
	if errors.Is(err, ledger.ErrAlreadyClaimed) {
		// The run request won the race: handle req the ordinary way.
		return again(ctx, req, p)
	}
	if err != nil {
		return d.failed(ctx, a, err)
	}
	a.Decision, a.Reason = DecisionCancelled, why+": the run id is closed, nothing will be launched for it"
	d.write(ctx, a)
	d.emit(ctx, protocol.RunEvent{RunID: req.RunID, State: protocol.EventCancelled, Reason: a.Reason})
	return nil
}

// handleRelease deletes the run's queue once the trigger has stopped
// reading it. The trigger releases a run it no longer watches, so a run that
// has not ended is stopped too (stopUnwatched), whatever order SNS delivers
// the trigger's cancel and release in; a release for a run not yet in the
// ledger closes its run id, like an early cancel. Only a principal that may
// control the run (as for a cancel) releases it.
func (d *Dispatcher) handleRelease(ctx context.Context, req *protocol.Request, p identity.Principal) error {
	a := audit{RunID: req.RunID, Kind: req.Kind, Principal: p.ARN}
	item, ok, err := d.ledger.Get(ctx, req.RunID)
	if err != nil {
		return d.failed(ctx, a, err)
	}
	if !ok {
		// SNS does not keep order: the release may come before the run
		// request (and before the trigger's cancel). The trigger has
		// stopped watching, so the run must never start.
		return d.closeRunID(ctx, req, p, a, "released before the run request arrived", d.handleRelease)
	}
	a.Job = item.Job
	if !d.mayControl(p, item.RequestedBy, item.ControlPattern) {
		a.Decision, a.Reason = DecisionDenied, denyReason(p, "release", item)
		d.write(ctx, a)
		return nil
	}
	if item.Status == ledger.Queued || item.Status == ledger.AwaitingApproval {
		// Nobody watches it any more: it must never start (waiting.go).
		if err := d.rejectWaiting(ctx, item.RunID, item.Status, rejection{protocol.RejectCancelled, "released by " + p.ARN + " while waiting (" + string(item.Status) + "); nothing was launched"}); err != nil {
			return d.failed(ctx, a, err)
		}
	}
	keepQueue, err := d.stopUnwatched(ctx, req, item, p, &a)
	if err != nil {
		return d.failed(ctx, a, err)
	}
	if keepQueue {
		a.Decision = DecisionReleased
		d.write(ctx, a)
		return nil
	}
	url := item.QueueURL
	if url == "" {
		var found bool
		if url, found, err = d.queueURL(ctx, req.RunID); err != nil {
			return d.failed(ctx, a, err)
		} else if !found {
			a.Decision, a.Reason = DecisionIgnored, "run has no queue"
			d.write(ctx, a)
			return nil
		}
	}
	if err := d.deleteQueue(ctx, url); err != nil {
		return d.failed(ctx, a, err)
	}
	if err := d.ledger.Release(ctx, req.RunID, d.now()); err != nil {
		return d.failed(ctx, a, err)
	}
	a.Decision = DecisionReleased
	d.write(ctx, a)
	return nil
}

// stopUnwatched stops the task of a run that has not ended when its release
// comes: nobody reads its output any more. A run still launching is marked
// so that the launch stops its task as soon as it has the ARN; its queue is
// kept (keepQueue) for the launch to write to, and the sweep deletes it. A
// task whose job already exited is stopping anyway, and StopTask on it
// changes nothing.
func (d *Dispatcher) stopUnwatched(ctx context.Context, req *protocol.Request, item ledger.Item, p identity.Principal, a *audit) (keepQueue bool, err error) {
	if item.Status != ledger.Launching && item.Status != ledger.Accepted {
		return false, nil
	}
	taskARN := item.TaskARN
	if taskARN == "" {
		if taskARN, err = d.findTask(ctx, req.RunID, false); err != nil {
			return false, err
		}
	}
	if taskARN == "" {
		if item.Status != ledger.Launching {
			return false, nil
		}
		if err := d.ledger.AskCancel(ctx, req.RunID, p.ARN, d.now()); err != nil {
			return false, err
		}
		a.Reason = "released while launching: the task is stopped as soon as it is started; the sweep deletes the queue"
		return true, nil
	}
	reason := truncateRunes(oneLine("deploy-broker run "+item.RunID+" released by "+p.ARN+" before its task ended: nobody is watching it"), 250)
	if _, err := d.stopRunTasks(ctx, req.RunID, taskARN, reason); err != nil { // only tasks listed by startedBy (task.go)
		return false, fmt.Errorf("released run %s: %w", req.RunID, err)
	}
	a.Reason, a.TaskARN = "released while the ledger had no end for the run: StopTask sent (nobody watches it; a no-op if the job had already exited)", taskARN
	return false, nil
}

// denyReason says why p may not act on a run.
func denyReason(p identity.Principal, what string, it ledger.Item) string {
	by := it.RequestedBy
	if by == "" {
		by = "an unrecorded principal (a run from before proofs of identity)"
	}
	who := "the requester (any session of its role)"
	if it.ControlPattern != "" {
		who = "sessions of the requester's role matching " + it.ControlPattern + " (the allowed_principals entry that let the run in)"
	}
	return oneLine(p.ARN + " may not " + what + " run " + it.RunID + ", requested by " + by + ": only " + who + " and the broker's operators may")
}
