package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Runs that wait: for a concurrency slot (queued) or for an approver
// (awaiting approval). hold keeps one in the ledger with its request;
// startQueued, resumeQueued and launchQueued start it from there;
// rejectWaiting and its parts end it with a rejection.

// hold keeps a run that may not launch yet (queued, awaiting approval) in
// the ledger with its request, and gives up this invocation's lease.
func (d *Dispatcher) hold(ctx context.Context, req *protocol.Request, queueURL string, status ledger.Status) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	err = d.ledger.Hold(ctx, req.RunID, status, string(body), queueURL, d.now())
	if err != nil && !errors.Is(err, ledger.ErrConditionFailed) {
		return err
	}
	return nil
}

// rejectQueued ends a waiting run with a rejection (superseded, expired,
// cancelled). A run that is no longer waiting is left alone.
func (d *Dispatcher) rejectQueued(ctx context.Context, runID string, rej rejection) error {
	return d.rejectWaiting(ctx, runID, ledger.Queued, rej)
}

// rejectWaiting ends a run held in status (queued, awaiting approval) with
// a rejection; a run no longer in that status is left alone.
func (d *Dispatcher) rejectWaiting(ctx context.Context, runID string, status ledger.Status, rej rejection) error {
	_, err := d.rejectWaitingWith(ctx, runID, status, rej, nil)
	return err
}

// rejectWaitingWith is rejectWaiting that also records an approver's
// decision in the same conditional update, and says whether this call ended
// the run.
func (d *Dispatcher) rejectWaitingWith(ctx context.Context, runID string, status ledger.Status, rej rejection, decided *ledger.Decision) (bool, error) {
	it, ended, err := d.endWaiting(ctx, runID, status, rej, decided)
	if !ended || err != nil {
		return ended, err
	}
	return true, d.answerRejection(ctx, it, rej)
}

// endWaiting moves a run held in status to rejected in the ledger (with an
// approver's decision, if any, in the same conditional update); ended is
// false when the run was no longer in that status.
func (d *Dispatcher) endWaiting(ctx context.Context, runID string, status ledger.Status, rej rejection, decided *ledger.Decision) (it ledger.Item, ended bool, err error) {
	it, err = d.ledger.EndWaiting(ctx, runID, status, rej.code, rej.reason, decided)
	if errors.Is(err, ledger.ErrConditionFailed) {
		return ledger.Item{}, false, nil
	}
	if err != nil {
		return ledger.Item{}, false, err
	}
	return it, true, nil
}

// answerRejection tells the trigger of a waiting run that the ledger has
// ended with rej: the rejected record on its queue, then the run's end.
func (d *Dispatcher) answerRejection(ctx context.Context, it ledger.Item, rej rejection) error {
	url := it.QueueURL
	if url == "" {
		var found bool
		var err error
		if url, found, err = d.queueURL(ctx, it.RunID); err != nil {
			return err
		} else if !found {
			return d.ledger.MarkEnded(ctx, it.RunID, d.now())
		}
	}
	var req protocol.Request
	_ = json.Unmarshal([]byte(it.QueuedRequest), &req)
	return d.rejectTo(ctx, it.RunID, url, rej, audit{RunID: it.RunID, Kind: protocol.KindRun, Job: it.Job, Requester: req.Requester, Principal: it.RequestedBy, Params: it.Params})
}

// startQueued launches a promoted run from the request kept in the ledger.
// Of several invocations that try, the one whose conditional update moves it
// from queued to launching does it.
func (d *Dispatcher) startQueued(ctx context.Context, runID string) error {
	lease := d.leaseEnd(ctx)
	it, err := d.ledger.StartWaiting(ctx, runID, ledger.Queued, lease, nil)
	if errors.Is(err, ledger.ErrConditionFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.launchQueued(ctx, it, lease, false)
}

// resumeQueued takes over the start of a run from the queue whose starting
// invocation failed or died (its lease is over): exactly one caller wins the
// take-over, looks for a task the other may have started, and otherwise
// launches.
func (d *Dispatcher) resumeQueued(ctx context.Context, it ledger.Item) error {
	lease := d.leaseEnd(ctx)
	if err := d.ledger.TakeOver(ctx, it.RunID, it.LeaseUntil, lease); err != nil {
		if errors.Is(err, ledger.ErrConditionFailed) {
			return nil
		}
		return err
	}
	return d.launchQueued(ctx, it, lease, true)
}

// launchQueued launches a run from its kept request, under this
// invocation's lease.
func (d *Dispatcher) launchQueued(ctx context.Context, it ledger.Item, lease time.Time, lookFirst bool) error {
	runID := it.RunID
	req, derr := protocol.DecodeRequest([]byte(it.QueuedRequest))
	a := audit{RunID: runID, Kind: protocol.KindRun, Job: it.Job, Params: it.Params, Reason: "started from the ledger: a concurrency slot freed, or the run was approved"}
	if derr != nil {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, rejection{protocol.RejectLaunch, "the queued request could not be read back: " + oneLine(derr.Error())}, lease, a)
	}
	a.Requester, a.Principal = req.Requester, it.RequestedBy
	// The principal the request's proof verified when it arrived: the run
	// is checked and its queue made for it, as for any run.
	p, perr := identity.PrincipalFromARN(it.RequestedBy)
	if perr != nil {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, rejection{protocol.RejectLaunch, "the queued run's verified principal could not be read back: " + oneLine(perr.Error())}, lease, a)
	}
	if d.now().After(req.ExpiresAt.Add(d.cfg.Broker.ClockSkew.D())) {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, rejection{protocol.RejectExpired, "the request expired while the run waited for a concurrency slot; send it again"}, lease, a)
	}
	if lookFirst {
		arn, err := d.findTask(ctx, runID, true)
		if err != nil {
			d.releaseClaim(ctx, runID, lease)
			return err
		}
		if arn != "" {
			url, err := d.runQueue(ctx, req, p)
			if err == nil {
				a.Reason = "finished an interrupted start from the queue"
				err = d.accept(ctx, runID, req.Job, arn, url, a)
			}
			if err != nil {
				d.releaseClaim(ctx, runID, lease)
			}
			return err
		}
	}
	cj, rej := d.checkJob(req, p)
	if rej != nil {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, *rej, lease, a)
	}
	if err := d.launch(ctx, req, p, cj, a); err != nil {
		d.releaseClaim(ctx, runID, lease)
		return err
	}
	return nil
}

// cancelQueued ends a waiting run that its trigger cancelled.
func (d *Dispatcher) cancelQueued(ctx context.Context, item ledger.Item, a audit) error {
	what := "a concurrency slot"
	if item.Status == ledger.AwaitingApproval {
		what = "approval"
	}
	if err := d.rejectWaiting(ctx, item.RunID, item.Status, rejection{protocol.RejectCancelled, "cancelled by " + requesterOf(item) + " while waiting for " + what + "; nothing was launched"}); err != nil {
		return d.failed(ctx, a, err)
	}
	a.Decision, a.Reason = DecisionCancelled, "cancelled while waiting for "+what
	d.write(ctx, a)
	return nil
}
