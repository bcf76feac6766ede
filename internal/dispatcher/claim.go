package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// releaseClaim ends this invocation's lease on a run it failed to finish,
// so that Lambda's retry need not wait for the lease to run out. It is best
// effort: if it fails too, the lease simply expires.
func (d *Dispatcher) releaseClaim(ctx context.Context, runID string, lease time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := d.ledger.ReleaseLease(ctx, runID, lease, d.now())
	if err != nil && !errors.Is(err, ledger.ErrConditionFailed) {
		d.log.Warn("could not release the launch claim", "run_id", runID, "error", err.Error())
	}
}

// redelivered handles a run id that is already in the ledger. The same
// request delivered again finishes whatever the first delivery did not
// (a crash between the claim and the accepted record must not leave the
// trigger waiting) and repeats nothing that was done. A different request
// reusing the run id is refused in the audit log only: the queue belongs to
// the first one.
func (d *Dispatcher) redelivered(ctx context.Context, req *protocol.Request, p identity.Principal, hash string, a audit) error {
	for {
		prev, ok, err := d.ledger.Get(ctx, req.RunID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("run %s was claimed but its ledger item is gone", req.RunID)
		}
		switch {
		case prev.Status == ledger.Cancelled && prev.RequestHash == "" && !d.cancelledByController(prev.CancelledBy, p, req.Job):
			// A principal that may not control this run closed its run id
			// early: the run's own claim replaces that tombstone.
			d.log.Warn("overriding an early cancel by a principal that may not control the run", "run_id", req.RunID, "cancelled_by", prev.CancelledBy, "requested_by", p.ARN)
			return &reclaimError{token: prev.ClaimToken}
		case prev.Status == ledger.Cancelled && prev.RequestHash == "":
			if !prev.NotifiedAt.IsZero() {
				a.Decision, a.Reason = DecisionDuplicate, "the run was cancelled before its request arrived; already answered"
				d.write(ctx, a)
				return nil
			}
			// Answer on the run's queue, so a trigger still waiting ends at
			// once instead of at its cancel grace.
			return d.reject(ctx, req, p, rejection{protocol.RejectCancelled, "the run was cancelled before the broker handled its request; nothing was launched"}, a)
		case prev.RequestHash != hash:
			a.Decision, a.Reason = DecisionReplayed, "run id was already used by a different request"
			d.write(ctx, a)
			return nil
		case !prev.NotifiedAt.IsZero():
			a.Decision, a.Reason, a.TaskARN = DecisionDuplicate, "request already handled (status "+string(prev.Status)+")", prev.TaskARN
			d.write(ctx, a)
			return nil
		case d.now().Before(prev.LeaseUntil):
			// Another invocation holds the claim and may be at work this very
			// moment. Wait for it within our own time; if it outlives us,
			// Lambda retries and the retry looks again.
			if !d.pause(ctx, d.poll) {
				return fmt.Errorf("run %s is being launched by another invocation whose claim holds until %s; will look again", req.RunID, prev.LeaseUntil.UTC().Format(time.RFC3339))
			}
		case prev.TaskARN != "":
			// Launched, but the accepted record may never have been written.
			url, err := d.runQueue(ctx, req, p)
			if err != nil {
				return err
			}
			a.Reason = "finished an interrupted launch"
			return d.accept(ctx, req.RunID, req.Job, prev.TaskARN, url, a)
		case prev.Status == ledger.Rejected:
			return d.reject(ctx, req, p, rejection{prev.RejectCode, prev.Reason}, a)
		case prev.Status == ledger.Launching:
			done, err := d.resumeLaunch(ctx, req, p, prev, a)
			if done || err != nil {
				return err
			}
		default:
			a.Decision, a.Reason = DecisionDuplicate, "request already handled (status "+string(prev.Status)+")"
			d.write(ctx, a)
			return nil
		}
	}
}

// reclaimError asks handleRun to put its claim in place of the early
// cancel whose claim token it names.
type reclaimError struct{ token string }

func (e *reclaimError) Error() string { return "early cancel by another principal: claim over it" }

// cancelledByController reports whether the early cancel's principal (a
// verified ARN from the ledger) may control a run of job requested by p.
func (d *Dispatcher) cancelledByController(cancelledBy string, p identity.Principal, job string) bool {
	c, err := identity.PrincipalFromARN(cancelledBy)
	if err != nil {
		return false
	}
	return d.mayControl(c, p.ARN, controlPattern(p, d.cfg.Jobs[job].AllowedPrincipals))
}

// resumeLaunch handles a delivery that finds the run claimed but not yet
// launched, and the claim's lease over: the delivery that claimed it died
// between the claim and recording the task. done is false when the ledger
// should be read again.
func (d *Dispatcher) resumeLaunch(ctx context.Context, req *protocol.Request, p identity.Principal, prev ledger.Item, a audit) (done bool, err error) {
	// Take the claim over first: of several deliveries that saw the same
	// expired lease, exactly one goes on.
	lease := d.leaseEnd(ctx)
	if err := d.ledger.TakeOver(ctx, req.RunID, prev.LeaseUntil, lease); err != nil {
		if errors.Is(err, ledger.ErrConditionFailed) {
			return false, nil // another delivery took it: look again
		}
		return true, err
	}
	err = d.finishLaunch(ctx, req, p, prev, lease, a)
	if err != nil {
		d.releaseClaim(ctx, req.RunID, lease)
	}
	return true, err
}

// finishLaunch does what an interrupted launch left undone.
func (d *Dispatcher) finishLaunch(ctx context.Context, req *protocol.Request, p identity.Principal, prev ledger.Item, lease time.Time, a audit) error {
	// Did the interrupted invocation start the task after all?
	arn, err := d.findTask(ctx, req.RunID, true)
	if err != nil {
		return err
	}
	if arn != "" {
		url, err := d.runQueue(ctx, req, p)
		if err != nil {
			return err
		}
		a.Reason = "finished an interrupted launch"
		return d.accept(ctx, req.RunID, req.Job, arn, url, a)
	}
	var cj checkedJob
	var rej *rejection
	now, skew := d.now(), d.cfg.Broker.ClockSkew.D()
	switch {
	case now.After(req.ExpiresAt.Add(skew)):
		// A claim made just before the request expired may not turn into a
		// launch minutes after it: the request's own expiry bounds a
		// take-over as it bounds the first delivery.
		rej = &rejection{protocol.RejectExpired, fmt.Sprintf("request expired at %s before the broker could start its task (an earlier attempt was interrupted; broker time %s); send it again",
			req.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case now.Sub(prev.CreatedAt) > d.cfg.Broker.MaxRequestAge.D()+skew:
		rej = &rejection{protocol.RejectLaunch, interruptedReason}
	default:
		a.Reason = "took over an interrupted launch"
		cj, rej = d.checkJob(req, p) // the catalogue may have changed since the claim
	}
	if rej != nil {
		url, err := d.runQueue(ctx, req, p)
		if err != nil {
			return err
		}
		return d.rejectLaunch(ctx, req.RunID, req.Job, url, *rej, lease, a)
	}
	return d.launch(ctx, req, p, cj, a)
}

// interruptedReason is the rejection of a launch claim that nobody finished.
const interruptedReason = "the broker was interrupted while starting the task and it is now too late to start it safely; start a new run"
