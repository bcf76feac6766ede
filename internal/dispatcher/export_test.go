package dispatcher

import (
	"context"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// What the external tests (package dispatcher_test, which may import the
// local broker) need from inside.

type LedgerItem = ledger.Item

// SetWaits shortens the dispatcher's waits for tests.
func (d *Dispatcher) SetWaits(poll, reserve, backoff, maxBackoff time.Duration) {
	d.poll, d.reserve, d.backoff, d.maxBackoff = poll, reserve, backoff, maxBackoff
}

func (d *Dispatcher) LedgerGet(ctx context.Context, runID string) (LedgerItem, bool, error) {
	return d.ledger.Get(ctx, runID)
}

func (d *Dispatcher) LedgerClaim(ctx context.Context, it LedgerItem) error {
	return d.ledger.Claim(ctx, it)
}

// LedgerReject ends a launching run with a rejection in the ledger only.
func (d *Dispatcher) LedgerReject(ctx context.Context, runID, code, reason string) error {
	return d.ledger.Reject(ctx, runID, code, reason, time.Time{})
}

// LedgerFinish records a run's end in the ledger only.
func (d *Dispatcher) LedgerFinish(ctx context.Context, runID string, at time.Time) error {
	_, err := d.ledger.Finish(ctx, runID, ledger.End{At: at})
	return err
}

var RequestHash = requestHash

// DecidePrincipal is the verified principal Decide assumes (the proof's
// verification is an STS call, left out of the decision path).
const DecidePrincipal = "arn:aws:sts::111111111111:assumed-role/github-deployer/bench"

// Decide is the handler's decision path without AWS calls: decode, check
// against the catalogue (as DecidePrincipal), render the RunTask input. It
// returns the rejection code ("" when the run may go).
func (d *Dispatcher) Decide(body []byte, now time.Time) (string, error) {
	req, err := protocol.DecodeRequest(body)
	if err != nil {
		return "", err
	}
	p, err := identity.PrincipalFromARN(DecidePrincipal)
	if err != nil {
		return "", err
	}
	cj, rej := d.check(req, p, now)
	if rej != nil {
		return rej.code, nil
	}
	catJob, known := d.cfg.Jobs[req.Job]
	_ = redactParams(req.Params, catJob, known)
	_ = d.taskInput(req, p, cj, "https://sqs.example/"+req.RunID, now)
	return "", nil
}

// Replenish makes the spare queue a run of job by principalARN would leave
// after its acceptance (spare.go).
func (d *Dispatcher) Replenish(ctx context.Context, job, principalARN string) {
	d.replenish(ctx, job, principalARN)
}
