package dispatcher

import (
	"context"
	"errors"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Approvals (issue 16). A job with `approvers` does not launch when asked:
// after the request checks and the claim, the run waits in the ledger with
// status awaiting-approval and its request kept (as a queued run's), and
// its queue gets a queued record naming the approvers. An approve or reject
// request for the run id, from a verified principal that matches one of
// the job's approvers and is not the run's requester (not the same IAM
// user, nor any session of the same role: identity.Owner), decides it:
// approve moves it to launching and launches it like a run from the queue
// (concurrency applies after approval); reject refuses it (code
// disapproved, 241). The decision, who made it and when are kept in the
// ledger (approval, approval_by, approval_at) and the audit log. A waiting
// run waits at most until its request expires (+ skew); the sweep then
// refuses it (expired); a cancel takes it out (245).

// Audit decisions of approvals.
const (
	DecisionAwaitingApproval = "awaiting-approval"
	DecisionApproved         = "approved"
	DecisionDisapproved      = "disapproved"
)

// awaitApproval holds a run of a job with approvers until it is approved.
// ok is true when the launch may go on (no approvers, or approved).
func (d *Dispatcher) awaitApproval(ctx context.Context, req *protocol.Request, queueURL string, a audit) (ok bool, err error) {
	job, known := d.cfg.Jobs[req.Job]
	if !known || len(job.Approvers) == 0 {
		return true, nil
	}
	it, found, err := d.ledger.Get(ctx, req.RunID)
	if err != nil {
		return false, err
	}
	if found && it.Approval == ledger.ApprovalApproved {
		return true, nil
	}
	if err := d.hold(ctx, req, queueURL, ledger.AwaitingApproval); err != nil {
		return false, err
	}
	rec := d.record(protocol.TypeQueued, protocol.SourceDispatcher, uint64(max(d.now().UnixMilli(), 2)))
	rec.Queued = &protocol.Queued{Group: "job:" + req.Job, Approvers: job.Approvers, RunID: req.RunID}
	if err := d.send(ctx, queueURL, req.RunID, rec); err != nil {
		return false, err
	}
	a.Decision, a.Reason = DecisionAwaitingApproval, "awaiting approval by one of "+strings.Join(job.Approvers, ", ")
	d.write(ctx, a)
	ev := protocol.RunEvent{RunID: req.RunID, Job: req.Job, State: protocol.EventAwaitingApproval, Reason: a.Reason, Requester: a.Principal}
	if req.Requester != nil {
		ev.ClaimedRequester = req.Requester.String()
	}
	d.emit(ctx, ev)
	return false, nil
}

// handleApproval decides a run that awaits approval.
func (d *Dispatcher) handleApproval(ctx context.Context, req *protocol.Request, p identity.Principal) error {
	a := audit{RunID: req.RunID, Kind: req.Kind, Principal: p.ARN}
	if d.now().After(req.ExpiresAt.Add(d.cfg.Broker.ClockSkew.D())) {
		a.Decision, a.Reason = DecisionIgnored, string(req.Kind)+" request expired"
		d.answer(ctx, req, a)
		return nil
	}
	it, ok, err := d.ledger.Get(ctx, req.RunID)
	if err != nil {
		return d.failed(ctx, a, err)
	}
	if ok && it.Status == ledger.Rejected && it.RejectCode == protocol.RejectDisapproved && it.NotifiedAt.IsZero() && req.Kind == protocol.KindReject && d.mayApprove(p, it) == "" && req.RequestDigest == it.RequestHash {
		// A rejection whose answer to the requester failed after the
		// ledger recorded it (Lambda retries the reject): finish it.
		a.Job = it.Job
		if err := d.answerRejection(ctx, it, rejection{it.RejectCode, it.Reason}); err != nil {
			return d.failed(ctx, a, err)
		}
		a.Decision, a.Reason = DecisionDuplicate, "finished answering the rejection recorded earlier: "+it.Reason
		d.answer(ctx, req, a)
		return nil
	}
	if !ok || it.Status != ledger.AwaitingApproval {
		status := "no such run"
		if ok {
			status = "the run does not await approval (status " + string(it.Status) + ")"
		}
		a.Decision, a.Reason = DecisionIgnored, status
		d.answer(ctx, req, a)
		return nil
	}
	a.Job = it.Job
	if why := d.mayApprove(p, it); why != "" {
		a.Decision, a.Reason = DecisionDenied, why
		d.answer(ctx, req, a)
		return nil
	}
	if req.RequestDigest != it.RequestHash {
		// The approver was shown another request than the run's (the
		// digest binds the decision to what deploy-trigger showed).
		a.Decision, a.Reason = DecisionDenied, "the "+string(req.Kind)+" names request digest "+req.RequestDigest+" but run "+it.RunID+" was asked with request "+it.RequestHash+": nothing was decided; look at the run again (deploy-trigger show "+it.RunID+")"
		d.answer(ctx, req, a)
		return nil
	}
	decided := &ledger.Decision{By: p.ARN, At: d.now()}
	if req.Kind == protocol.KindReject {
		// The decision and the end of the run are one conditional update:
		// an approval arriving meanwhile finds the run no longer awaiting
		// approval, and cannot start it after it was disapproved.
		// The audit line comes as soon as the decision is recorded; if
		// answering the requester fails after it, Lambda's retry of this
		// reject finishes the answer (above).
		rej := rejection{protocol.RejectDisapproved, "rejected by " + p.ARN + " (approver)"}
		it, decided, err := d.endWaiting(ctx, req.RunID, ledger.AwaitingApproval, rej, decided)
		if err != nil {
			return d.failed(ctx, a, err)
		}
		if !decided {
			a.Decision, a.Reason = DecisionIgnored, "the run was decided or ended meanwhile"
			d.answer(ctx, req, a)
			return nil
		}
		a.Decision, a.Reason = DecisionDisapproved, rej.reason
		d.answer(ctx, req, a)
		if err := d.answerRejection(ctx, it, rej); err != nil {
			return d.failed(ctx, a, err)
		}
		return nil
	}
	lease := d.leaseEnd(ctx)
	decided.Approved = true
	it, err = d.ledger.StartWaiting(ctx, req.RunID, ledger.AwaitingApproval, lease, decided)
	if errors.Is(err, ledger.ErrConditionFailed) {
		a.Decision, a.Reason = DecisionIgnored, "the run was decided or ended meanwhile"
		d.answer(ctx, req, a)
		return nil
	}
	if err != nil {
		return d.failed(ctx, a, err)
	}
	a.Decision, a.Reason = DecisionApproved, "approved by "+p.ARN
	d.answer(ctx, req, a)
	return d.launchQueued(ctx, it, lease, false)
}

// answer writes the audit line of a decision request and, when the
// request carries a decision id (approve, reject, the cancel command), the
// dispatcher's answer to the run ledger, where the deciding deploy-trigger
// reads it (ledger.Answer). An answer that cannot be written is logged: the
// decision itself is in the run's item, which the trigger reads too.
func (d *Dispatcher) answer(ctx context.Context, req *protocol.Request, a audit) {
	d.write(ctx, a)
	if req.DecisionID == "" {
		return
	}
	err := d.ledger.RecordAnswer(ctx, ledger.Answer{DecisionID: req.DecisionID, Kind: string(req.Kind), RunID: req.RunID,
		By: a.Principal, Outcome: a.Decision, Reason: a.Reason, At: d.now()})
	if err != nil {
		d.log.WarnContext(ctx, "could not record the answer to a decision request", "run_id", req.RunID, "decision_id", req.DecisionID, "error", err)
	}
}

// mayApprove says why p may not decide the run ("" when it may).
func (d *Dispatcher) mayApprove(p identity.Principal, it ledger.Item) string {
	job, ok := d.cfg.Jobs[it.Job]
	if !ok {
		return "job " + it.Job + " is no longer in the catalogue"
	}
	if it.RequestedBy != "" && p.Owner() == identity.OwnerOfARN(it.RequestedBy) {
		return p.ARN + " requested the run and may not approve or reject it: a second person must"
	}
	for _, pat := range job.Approvers {
		if m, err := identity.MatchPrincipal(p, pat); err == nil && m {
			return ""
		}
	}
	return p.ARN + " is not among the approvers of job " + it.Job + " (" + strings.Join(job.Approvers, ", ") + ")"
}
