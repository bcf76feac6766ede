package trigger

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Decisions (issues 24, 25): approve, reject and cancel read the run from
// the run ledger before they send anything, send a request with a fresh
// decision id, and read the broker's answer back from the ledger
// (ledger.Answer), all through the history index that `show` reads: the
// reader needs dynamodb:Query on that index, which the stack's reader role
// grants to the catalogue's viewers. No reply queue, no new permission:
// the answer is a ledger item like the run it decides.

// answerPoll is how often the answer (and, for cancel, the run) is read.
var answerPoll = 500 * time.Millisecond

// decisionReader is the run ledger, read for a decision: with the reader
// role when --reader-role-arn is given (assumed from this caller's own
// credentials, as `show --role-arn` does), else with the caller's own.
func (a *app) decisionReader(ctx context.Context, cfg *Config, requester *protocol.Requester, what string) (historyReader, error) {
	if cfg.LedgerTable == "" {
		// The broker's published view names the ledger and the reader role
		// (discovery.go): --env is enough.
		if err := a.decisionTargets(ctx, cfg, requester); err != nil {
			return historyReader{}, exitcode.New(exitcode.Code(err), fmt.Errorf("%s reads the run from the run ledger before it sends anything, and the broker's answer after; the broker's published view names it, but %w; or pass --ledger-table NAME (the stack's LedgerTable output; DEPLOY_TRIGGER_LEDGER_TABLE) and, from another account, --reader-role-arn ARN (the stack's ReaderRole, which the catalogue's viewers may assume); nothing was sent", what, err))
		}
	}
	if cfg.LedgerTable == "" {
		return historyReader{}, exitcode.Errorf(exitcode.Usage, "%s reads the run from the run ledger before it sends anything, and the broker's answer after: pass --ledger-table NAME (the stack's LedgerTable output; DEPLOY_TRIGGER_LEDGER_TABLE) and, from another account, --reader-role-arn ARN (the stack's ReaderRole, which the catalogue's viewers may assume); nothing was sent", what)
	}
	rc := *cfg
	if cfg.ReaderRoleARN != "" {
		rc.RoleARN, rc.ExternalID, rc.SessionName = cfg.ReaderRoleARN, "", ""
	}
	awsCfg, err := a.awsConfig(ctx, &rc, requester)
	if err != nil {
		return historyReader{}, err
	}
	if err := reachFirst(ctx, newClients(awsCfg)); err != nil { // discovery.go
		return historyReader{}, err
	}
	return historyReader{db: dynamodb.NewFromConfig(awsCfg), table: cfg.LedgerTable}, nil
}

// decisionRun reads the run a decision (approve, reject, cancel) is about
// and shows it on stderr before anything is sent: the printer, the
// resolved configuration, the ledger reader and the run. A run id the
// ledger does not hold is a usage error (240), as for show, logs and attach.
func (a *app) decisionRun(ctx context.Context, cli *CLI, runID, what string) (printer, *Config, historyReader, historyRun, error) {
	cli.Params = nil
	out := a.printer(cli, cli.Output)
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return out, nil, historyReader{}, historyRun{}, exitcode.New(exitcode.Usage, err)
	}
	h, err := a.decisionReader(ctx, cfg, requesterFromEnv(a.getenv, a.hostname), what)
	if err != nil {
		return out, cfg, h, historyRun{}, err
	}
	run, found, err := h.get(ctx, runID)
	if err != nil {
		return out, cfg, h, run, err
	}
	if !found {
		return out, cfg, h, run, fmt.Errorf("%w; nothing was sent", notInLedger(runID, cfg.LedgerTable))
	}
	fmt.Fprint(a.stderr, describeRun(run, a.now()))
	return out, cfg, h, run, nil
}

// answer returns the broker's answer to decision id, if it has come.
func (h historyReader) answer(ctx context.Context, id string) (ledger.Answer, bool, error) {
	out, err := h.query(ctx, ledger.AnswerQuery(h.table, id))
	if err != nil || len(out.Items) == 0 {
		return ledger.Answer{}, false, err
	}
	return ledger.DecodeAnswer(out.Items[0]), true, nil
}

// waitAnswer reads the answer to decision id until it comes or wait has
// passed. settled, when not nil, reads the run too: it says the run's own
// item already shows the decision (an answer the dispatcher could not
// write), with an answer made from it.
func (a *app) waitAnswer(ctx context.Context, h historyReader, id string, wait time.Duration, settled func(historyRun) (ledger.Answer, bool), runID string) (ledger.Answer, error) {
	deadline := a.now().Add(wait)
	for {
		ans, ok, err := h.answer(ctx, id)
		if err != nil {
			return ledger.Answer{}, err
		}
		if ok {
			return ans, nil
		}
		if settled != nil {
			r, found, err := h.get(ctx, runID)
			if err != nil {
				return ledger.Answer{}, err
			}
			if found {
				if ans, ok := settled(r); ok {
					return ans, nil
				}
			}
		}
		if !a.now().Before(deadline) {
			return ledger.Answer{}, exitcode.Errorf(exitcode.StartTimeout, "the broker has not answered within %s (decision %s of run %s): it may have refused the request's proof of identity, or be failing; its audit log says which. deploy-trigger show %s tells whether anything changed", wait, id, runID, runID)
		}
		select {
		case <-ctx.Done():
			return ledger.Answer{}, exitcode.Errorf(exitcode.Cancelled, "stopped waiting for the broker's answer: %v", ctx.Err())
		case sig := <-a.signals:
			return ledger.Answer{}, exitcode.Errorf(exitcode.Cancelled, "stopped waiting for the broker's answer (%v); the request was sent: deploy-trigger show %s tells what became of it", sig, runID)
		case <-time.After(answerPoll):
		}
	}
}

// describeRun is what a decider sees of the run before deciding: the job,
// the parameters as the ledger has them (secret values are never stored),
// who asked (verified and claimed), since when it waits, and the digest of
// its request, which the decision carries.
func describeRun(r historyRun, now time.Time) string {
	it := r.item
	var b strings.Builder
	fmt.Fprintf(&b, "run %s (%s)\n", r.RunID, r.Status)
	fmt.Fprintf(&b, "  job           %s\n", r.Job)
	names := make([]string, 0, len(r.Params))
	for k := range r.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	params := "none"
	if len(names) > 0 {
		kv := make([]string, len(names))
		for i, k := range names {
			kv[i] = k + "=" + r.Params[k]
		}
		params = strings.Join(kv, " ")
	}
	fmt.Fprintf(&b, "  parameters    %s\n", params)
	if r.RequestedBy != "" {
		fmt.Fprintf(&b, "  requested by  %s (verified)\n", r.RequestedBy)
	} else {
		fmt.Fprintf(&b, "  requested by  unknown\n")
	}
	fmt.Fprintf(&b, "  claimed       %s\n", orUnknown(r.Requester))
	// A run that waits (queued, awaiting approval) says since when; any
	// other (a cancel of a running run) when it was requested: it said
	// "waiting since" of a running or stopped run too.
	label, since := "waiting since", it.QueuedAt
	if since.IsZero() {
		since = it.CreatedAt
	}
	if it.Status != ledger.Queued && it.Status != ledger.AwaitingApproval {
		label, since = "requested    ", it.RequestedAt
	}
	if !since.IsZero() {
		fmt.Fprintf(&b, "  %s %s (%s)\n", label, since.UTC().Format(time.RFC3339), now.Sub(since).Round(time.Second))
	}
	fmt.Fprintf(&b, "  request       sha256:%s\n", orUnknown(it.RequestHash))
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// decisionRequest is an approve, reject or cancel request for runID with a
// fresh decision id.
func (a *app) decisionRequest(kind protocol.Kind, runID string, ttl time.Duration) *protocol.Request {
	now := a.now()
	req := newRequest(kind, runID, now, ttl)
	req.DecisionID = protocol.NewRunID(now)
	return req
}
