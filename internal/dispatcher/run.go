package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// HandleRequest handles one protocol request (an SNS message body).
func (d *Dispatcher) HandleRequest(ctx context.Context, body []byte) error {
	req, err := protocol.DecodeRequest(body)
	if err != nil {
		// Malformed: there is nobody we can safely answer, only the audit log.
		d.write(ctx, audit{RunID: peekRunID(body), Decision: DecisionMalformed, Reason: oneLine(err.Error())})
		return nil
	}
	ctx, cancel := d.bound(ctx)
	defer cancel()
	// Who sent it, before anything else: a request whose proof does not
	// verify creates nothing, and is answered only in the audit log.
	p, err := d.verify(ctx, req)
	if err != nil {
		if prev, ok := d.verifiedBefore(ctx, req, body, err); ok {
			p, err = prev, nil
		}
	}
	if err != nil {
		a := audit{RunID: req.RunID, Kind: req.Kind, Job: req.Job, Requester: req.Requester}
		if !refused(err) {
			return d.failed(ctx, a, err)
		}
		a.Decision, a.Reason = DecisionRefused, oneLine("proof of identity refused: "+err.Error())
		d.write(ctx, a)
		return nil
	}
	switch req.Kind {
	case protocol.KindRun:
		return d.handleRun(ctx, req, body, p)
	case protocol.KindCancel:
		return d.handleCancel(ctx, req, p)
	case protocol.KindRelease:
		return d.handleRelease(ctx, req, p)
	case protocol.KindApprove, protocol.KindReject:
		return d.handleApproval(ctx, req, p)
	}
	return nil
}

// peekRunID extracts a well-formed run id from a malformed request, for the
// audit line only.
func peekRunID(body []byte) string {
	var p struct {
		RunID string `json:"run_id"`
	}
	if json.Unmarshal(body, &p) == nil && protocol.ValidateRunID(p.RunID) == nil {
		return p.RunID
	}
	return ""
}

func requestHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// handleRun is the request path of a run, in the order of the files that
// hold it: the request checks (check.go), the claim of the run id in the
// ledger and a redelivery's path (claim.go), then the rejection or the
// launch (launch.go, with the ECS calls in task.go), all within the
// invocation's time (deadline.go).
func (d *Dispatcher) handleRun(ctx context.Context, req *protocol.Request, body []byte, p identity.Principal) error {
	now := d.now()
	cj, rej := d.check(req, p, now)
	catJob, known := d.cfg.Jobs[req.Job]
	a := audit{RunID: req.RunID, Kind: req.Kind, Job: req.Job, Requester: req.Requester, Principal: p.ARN,
		Params: redactParams(req.Params, catJob, known)}

	item := ledger.Item{RunID: req.RunID, Status: ledger.Launching, Job: req.Job, Params: a.Params,
		Requester: req.Requester.String(), RequestedBy: p.ARN, RequestHash: requestHash(body), RequestedAt: req.RequestedAt,
		CreatedAt: now, LeaseUntil: d.leaseEnd(ctx), ClaimToken: ledger.NewToken(), IdempotencyKey: req.IdempotencyKey}
	if known {
		item.ControlPattern = controlPattern(p, catJob.AllowedPrincipals)
	}
	if rej == nil && req.IdempotencyKey != "" {
		// Keys are predictable by design: each belongs to its first owner.
		var err error
		if rej, err = d.claimKey(ctx, req, p, now); err != nil {
			return d.failed(ctx, a, err)
		}
	}
	freshSlot := false
	if rej == nil {
		// Per-principal throttle (throttle.go): one principal's flood of
		// valid requests cannot take every task and invocation.
		var err error
		if rej, freshSlot, err = d.takeSlot(ctx, req, p, cj.job); err != nil {
			return d.failed(ctx, a, err)
		}
		if rej == nil {
			item.Slot = principalKey(p)
		}
	}
	if rej != nil {
		item.Status, item.RejectCode, item.Reason = ledger.Rejected, rej.code, rej.reason
	}
	// Claim the run id before anything else: a second delivery stops here.
	if err := d.ledger.Claim(ctx, item); err != nil {
		if errors.Is(err, ledger.ErrAlreadyClaimed) {
			if freshSlot {
				defer d.dropSpuriousSlot(ctx, req.RunID, item.Slot)
			}
			err = d.redelivered(ctx, req, p, item.RequestHash, a)
			var re *reclaimError
			if !errors.As(err, &re) {
				return d.failed(ctx, a, err)
			}
			if err = d.ledger.ReplaceTombstone(ctx, item, re.token); err != nil {
				return d.failed(ctx, a, err)
			}
		} else {
			return d.failed(ctx, a, err)
		}
	}
	d.emit(ctx, runEvent(protocol.EventRequested, item))
	var err error
	if rej != nil {
		err = d.reject(ctx, req, p, *rej, a)
	} else {
		err = d.launch(ctx, req, p, cj, a)
	}
	if err != nil {
		d.releaseClaim(ctx, req.RunID, item.LeaseUntil)
	}
	return d.failed(ctx, a, err)
}

// claimKey makes the request's idempotency key its verified owner's, or
// refuses the run when another owner used the key first (issue 24: with
// keys like jenkins-<job>-<build>, a stranger's run under Jenkins' key made
// Jenkins' attach --key follow the stranger's run).
func (d *Dispatcher) claimKey(ctx context.Context, req *protocol.Request, p identity.Principal, now time.Time) (*rejection, error) {
	err := d.ledger.ClaimKey(ctx, req.IdempotencyKey, p.Owner(), now)
	if errors.Is(err, ledger.ErrKeyInUse) {
		return &rejection{protocol.RejectKeyInUse, fmt.Sprintf("idempotency key %q is already used by another principal's runs: a key belongs to the principal (role or user) that used it first; "+
			"choose a key of your own (e.g. with your CI system, repository or pipeline in it)", req.IdempotencyKey)}, nil
	}
	return nil, err
}

// failed writes an audit line for a request whose handling failed and will
// be retried by Lambda (the retry writes the decision), and passes err on.
func (d *Dispatcher) failed(ctx context.Context, a audit, err error) error {
	if err != nil {
		a.Decision, a.Reason = DecisionError, oneLine(err.Error())
		d.write(ctx, a)
	}
	return err
}

// oneLine folds s onto one line of at most 500 bytes.
func oneLine(s string) string {
	return truncateRunes(strings.Join(strings.Fields(s), " "), 500)
}

// truncateRunes cuts s to at most n bytes without splitting a character,
// marking the cut with "…".
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
