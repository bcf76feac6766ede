package trigger

import (
	"context"
	"fmt"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// decisionKind recognises `deploy-trigger approve RUN_ID` and
// `deploy-trigger reject RUN_ID`: an approver's decision about a run that
// waits for approval (the job's `approvers`). A job named approve or reject
// is still run when its arguments are parameters (name=value), never a run
// id.
func decisionKind(cli *CLI) (protocol.Kind, string, bool) {
	if len(cli.Params) != 1 || protocol.ValidateRunID(cli.Params[0]) != nil {
		return "", "", false
	}
	switch cli.Job {
	case "approve":
		return protocol.KindApprove, cli.Params[0], true
	case "reject":
		return protocol.KindReject, cli.Params[0], true
	}
	return "", "", false
}

// decide publishes an approve or reject request for runID, signed like
// every request with this caller's proof of identity. The dispatcher checks
// that the caller is one of the job's approvers and not the run's
// requester; its answer is in its audit log, and the run's own
// deploy-trigger shows what follows (the run starts, or ends with 241).
func (a *app) decide(ctx context.Context, cli *CLI, kind protocol.Kind, runID string) error {
	cli.Params = nil
	out := a.printer(cli, cli.Output)
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return a.fail(out, exitcode.New(exitcode.Usage, err))
	}
	requester := requesterFromEnv(a.getenv, a.hostname)
	c, err := a.awsClients(ctx, cfg, requester)
	if err != nil {
		return a.fail(out, err)
	}
	signer, err := preflight(ctx, c, a.now)
	if err != nil {
		return a.fail(out, err)
	}
	if err := publish(ctx, c, cfg.Topic, newRequest(kind, runID, a.now(), cfg.RequestTTL)); err != nil {
		return a.fail(out, err)
	}
	verb := map[protocol.Kind]string{protocol.KindApprove: "approval", protocol.KindReject: "rejection"}[kind]
	out.notice(fmt.Sprintf("%s of run %s sent as %s; the broker accepts it only from one of the job's approvers who did not request the run (its audit log says approved, disapproved or denied)", verb, runID, signer))
	return nil
}
