package trigger

import (
	"context"
	"fmt"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// cancelRun is `deploy-trigger cancel RUN_ID` (issue 25): the run's
// requester (any session of its role) or an operator stops a run, whoever
// started it and wherever its trigger is. It reads the run from the ledger,
// publishes a cancel with a decision id, reads the broker's answer (denied:
// 241 with the reason) and then the run until it has ended: exit 0 once it
// is stopped (or had already ended: nothing is sent), 247 when it has not
// stopped within --cancel-grace; a run the ledger does not know is 241.
func (a *app) cancelRun(ctx context.Context, cli *CLI, runID string) error {
	// (A run whose request the broker has not handled yet is not in the
	// ledger: the cancel its own trigger sends when it gives up closes it,
	// watch_cancel.go.)
	out, cfg, h, run, err := a.decisionRun(ctx, cli, runID, "cancel") // decision.go
	if err != nil {
		return a.fail(out, err)
	}
	requester := requesterFromEnv(a.getenv, a.hostname)
	if !ledger.Pending(run.Outcome) {
		out.notice(fmt.Sprintf("run %s has already ended (%s): nothing to cancel, nothing was sent", runID, run.Outcome))
		return nil
	}
	c, err := a.awsClients(ctx, cfg, requester)
	if err != nil {
		return a.fail(out, err)
	}
	signer, err := preflight(ctx, c, a.now)
	if err != nil {
		return a.fail(out, err)
	}
	req := a.decisionRequest(protocol.KindCancel, runID, cfg.RequestTTL)
	if err := publish(ctx, c, cfg.Topic, req); err != nil {
		return a.fail(out, err)
	}
	out.notice(fmt.Sprintf("cancel of run %s sent as %s; waiting for the broker's answer", runID, orUnknown(signer)))
	ans, err := a.waitAnswer(ctx, h, req.DecisionID, answerWait(cfg), endedRun, runID)
	if err != nil {
		return a.fail(out, err)
	}
	if ans.Outcome == "denied" {
		return a.fail(out, exitcode.Errorf(exitcode.Rejected, "the broker refused to cancel run %s: %s", runID, ans.Reason))
	}
	r, err := a.waitEnded(ctx, h, runID, cfg.CancelGrace)
	if err != nil {
		return a.fail(out, err)
	}
	by := firstNonEmpty(r.CancelledBy, ans.By, signer, "unknown")
	how := r.Outcome
	if r.RejectCode == protocol.RejectCancelled {
		how = "cancelled before it started"
	}
	out.notice(fmt.Sprintf("run %s stopped (%s), cancelled by %s", runID, how, by))
	return nil
}

// endedRun makes an answer of a run that has ended: the broker's answer
// may come after the run's end, or not at all (an early cancel).
func endedRun(r historyRun) (ledger.Answer, bool) {
	if ledger.Pending(r.Outcome) {
		return ledger.Answer{}, false
	}
	return ledger.Answer{Kind: string(protocol.KindCancel), RunID: r.RunID, By: r.CancelledBy, Outcome: r.Outcome, Reason: r.Reason}, true
}

// waitEnded reads the run until the ledger says it has ended.
func (a *app) waitEnded(ctx context.Context, h historyReader, runID string, wait time.Duration) (historyRun, error) {
	deadline := a.now().Add(wait)
	for {
		r, found, err := h.get(ctx, runID)
		if err != nil {
			return historyRun{}, err
		}
		if found && !ledger.Pending(r.Outcome) {
			return r, nil
		}
		if !a.now().Before(deadline) {
			return historyRun{}, exitcode.Errorf(exitcode.Broker, "the cancel of run %s was sent, but the run has not stopped within %s (--cancel-grace): deploy-trigger show %s tells where it is", runID, wait, runID)
		}
		select {
		case <-ctx.Done():
			return historyRun{}, exitcode.Errorf(exitcode.Cancelled, "stopped waiting for run %s to stop: %v", runID, ctx.Err())
		case sig := <-a.signals:
			return historyRun{}, exitcode.Errorf(exitcode.Cancelled, "stopped waiting for run %s to stop (%v); the cancel was sent", runID, sig)
		case <-time.After(answerPoll):
		}
	}
}
