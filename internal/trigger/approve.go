package trigger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// decisionKind recognises `deploy-trigger approve RUN_ID`,
// `deploy-trigger reject RUN_ID` and `deploy-trigger cancel RUN_ID`: an
// approver's decision about a run that waits for approval (the job's
// `approvers`), or a cancel (cancel.go). No job may be named like these
// commands (protocol.ReservedJobNames).
func decisionKind(cli *CLI) (protocol.Kind, string, bool) {
	if len(cli.Params) != 1 || protocol.ValidateRunID(cli.Params[0]) != nil {
		return "", "", false
	}
	switch cli.Job {
	case "approve":
		return protocol.KindApprove, cli.Params[0], true
	case "reject":
		return protocol.KindReject, cli.Params[0], true
	case "cancel":
		return protocol.KindCancel, cli.Params[0], true
	}
	return "", "", false
}

// decide approves or rejects runID (issues 24, 25). It reads the run from
// the ledger and shows it (job, non-secret parameters, requester, since
// when it waits), asks for confirmation on a terminal (--yes skips it;
// without a terminal --yes is required), then publishes the decision,
// signed with this caller's proof of identity and bound to the request it
// showed (request_digest: the ledger's request_hash), and waits for the
// broker's answer (decision.go). Exit 0 only when the decision was
// recorded; 241 with the broker's reason otherwise (not an approver, the
// run's own requester, another request than the one shown, a run that no
// longer waits).
func (a *app) decide(ctx context.Context, cli *CLI, kind protocol.Kind, runID string) error {
	if kind == protocol.KindCancel {
		return a.cancelRun(ctx, cli, runID) // cancel.go
	}
	out, cfg, h, run, err := a.decisionRun(ctx, cli, runID, string(kind)) // decision.go
	if err != nil {
		return a.fail(out, err)
	}
	requester := requesterFromEnv(a.getenv, a.hostname)
	if run.item.Status != ledger.AwaitingApproval {
		return a.fail(out, exitcode.Errorf(exitcode.Rejected, "run %s does not await approval (its status is %s): nothing was sent", runID, run.Status))
	}
	verb := map[protocol.Kind]string{protocol.KindApprove: "Approve", protocol.KindReject: "Reject"}[kind]
	if err := a.confirmDecision(ctx, cfg, fmt.Sprintf("%s run %s of job %s?", verb, runID, run.Job)); err != nil {
		return a.fail(out, err)
	}
	c, err := a.awsClients(ctx, cfg, requester)
	if err != nil {
		return a.fail(out, err)
	}
	signer, err := preflight(ctx, c, a.now)
	if err != nil {
		return a.fail(out, err)
	}
	req := a.decisionRequest(kind, runID, cfg.RequestTTL)
	req.RequestDigest = run.item.RequestHash
	if err := publish(ctx, c, cfg.Topic, req); err != nil {
		return a.fail(out, err)
	}
	out.notice(fmt.Sprintf("%s of run %s sent as %s; waiting for the broker's answer", strings.ToLower(verb), runID, orUnknown(signer)))
	ans, err := a.waitAnswer(ctx, h, req.DecisionID, answerWait(cfg), decidedBy(kind, signer), runID)
	if err != nil {
		return a.fail(out, err)
	}
	switch ans.Outcome {
	case "approved", "disapproved":
		out.notice(fmt.Sprintf("run %s %s by %s: %s", runID, map[string]string{"approved": "approved", "disapproved": "rejected"}[ans.Outcome], ans.By, decisionNext(kind)))
		return nil
	}
	return a.fail(out, notRecorded(kind, runID, ans.Outcome, ans.Reason))
}

// notRecorded is the error when the broker answered a decision without
// recording it (the run was no longer waiting, say).
func notRecorded(kind protocol.Kind, runID, outcome, reason string) error {
	noun := map[protocol.Kind]string{protocol.KindApprove: "approval", protocol.KindReject: "rejection"}[kind]
	return exitcode.Errorf(exitcode.Rejected, "the broker did not record the %s of run %s (%s): %s", noun, runID, outcome, reason)
}

// decisionNext says what follows a recorded decision.
func decisionNext(kind protocol.Kind) string {
	if kind == protocol.KindApprove {
		return "the run starts (concurrency still applies); its requester's deploy-trigger follows it"
	}
	return "the run ends with 241 and starts nothing"
}

// decidedBy recognises, in the run's own item, this caller's recorded
// decision (an answer the dispatcher could not write).
func decidedBy(kind protocol.Kind, signer string) func(historyRun) (ledger.Answer, bool) {
	want := map[protocol.Kind]string{protocol.KindApprove: ledger.ApprovalApproved, protocol.KindReject: ledger.ApprovalRejected}[kind]
	outcome := map[protocol.Kind]string{protocol.KindApprove: "approved", protocol.KindReject: "disapproved"}[kind]
	return func(r historyRun) (ledger.Answer, bool) {
		if signer == "" || r.item.Approval != want || r.item.ApprovalBy != signer {
			return ledger.Answer{}, false
		}
		return ledger.Answer{Kind: string(kind), RunID: r.RunID, By: signer, Outcome: outcome, At: r.item.ApprovalAt}, true
	}
}

// answerWait is how long a decision waits for the broker's answer: the
// --queue-timeout (the broker not answering at all), else --start-timeout.
func answerWait(cfg *Config) time.Duration {
	if cfg.QueueTimeout > 0 {
		return cfg.QueueTimeout
	}
	return cfg.StartTimeout
}

// confirmDecision asks on the terminal before a decision is sent; --yes
// skips the question, and without a terminal --yes is needed.
func (a *app) confirmDecision(ctx context.Context, cfg *Config, question string) error {
	switch {
	case cfg.Yes:
		return nil
	case !a.stdinTTY:
		return exitcode.Errorf(exitcode.Safety, "%s stdin is not a terminal, so nobody can confirm: pass --yes (or DEPLOY_TRIGGER_YES=true) once you have read the run above; nothing was sent", question)
	}
	return a.askYes(ctx, question, "nothing was sent") // confirm.go
}
