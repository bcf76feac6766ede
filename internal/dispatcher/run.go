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

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
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
	switch req.Kind {
	case protocol.KindRun:
		return d.handleRun(ctx, req, body)
	case protocol.KindCancel:
		return d.handleCancel(ctx, req)
	case protocol.KindRelease:
		return d.handleRelease(ctx, req)
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

// rejection is a refusal with a code and a one-line reason.
type rejection struct{ code, reason string }

// check decides whether a well-formed run request may run. It uses no AWS
// call: it is the hot path measured by the handler benchmark.
func (d *Dispatcher) check(req *protocol.Request, now time.Time) (config.Job, []string, *rejection) {
	if rej := d.checkTime(req, now); rej != nil {
		job := d.cfg.Jobs[req.Job]
		return job, nil, rej
	}
	return d.checkJob(req)
}

// checkTime refuses expired, future-dated, overlong and replayed requests.
func (d *Dispatcher) checkTime(req *protocol.Request, now time.Time) *rejection {
	skew := d.cfg.Broker.ClockSkew.D()
	maxAge := d.cfg.Broker.MaxRequestAge.D()
	switch {
	case now.After(req.ExpiresAt.Add(skew)):
		return &rejection{protocol.RejectExpired, fmt.Sprintf("request expired at %s (broker time %s); check the CI clock or send it again", req.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case req.RequestedAt.After(now.Add(skew)):
		return &rejection{protocol.RejectExpired, fmt.Sprintf("request is dated %s, in the future of the broker's clock (%s); check the CI clock", req.RequestedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case req.ExpiresAt.Sub(req.RequestedAt) > maxAge:
		return &rejection{protocol.RejectExpired, fmt.Sprintf("request is valid for %s, longer than the broker's limit of %s", req.ExpiresAt.Sub(req.RequestedAt).Round(time.Second), maxAge)}
	}
	idTime, err := protocol.RunIDTime(req.RunID)
	if err != nil || idTime.Before(now.Add(-maxAge-skew)) || idTime.After(now.Add(skew)) {
		return &rejection{protocol.RejectReplayed, fmt.Sprintf("run id %s was not made for this request (its time is %s); make a new run id for every run", req.RunID, idTime.Format(time.RFC3339))}
	}
	return nil
}

// checkJob checks the job and its parameters against the catalogue and
// renders the command.
func (d *Dispatcher) checkJob(req *protocol.Request) (config.Job, []string, *rejection) {
	job, ok := d.cfg.Jobs[req.Job]
	if !ok {
		return config.Job{}, nil, &rejection{protocol.RejectUnknownJob, fmt.Sprintf("job %q is not in this broker's catalogue (jobs: %s)", req.Job, strings.Join(d.cfg.JobNames(), ", "))}
	}
	argv, err := job.Render(req.Params)
	if err != nil {
		return job, nil, &rejection{protocol.RejectBadParams, oneLine(fmt.Sprintf("job %q: %v", req.Job, err))}
	}
	return job, argv, nil
}

func requestHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func (d *Dispatcher) handleRun(ctx context.Context, req *protocol.Request, body []byte) error {
	now := d.now()
	job, argv, rej := d.check(req, now)
	catJob, known := d.cfg.Jobs[req.Job]
	a := audit{RunID: req.RunID, Kind: req.Kind, Job: req.Job, Requester: req.Requester,
		Params: redactParams(req.Params, catJob, known)}

	item := ledgerItem{RunID: req.RunID, Status: StatusLaunching, Job: req.Job, Params: a.Params,
		Requester: req.Requester.String(), RequestHash: requestHash(body), RequestedAt: req.RequestedAt,
		CreatedAt: now, LeaseUntil: d.leaseEnd(ctx), ClaimToken: newClaimToken()}
	if rej != nil {
		item.Status, item.RejectCode, item.Reason = StatusRejected, rej.code, rej.reason
	}
	// Claim the run id before anything else: a second delivery stops here.
	if err := d.ledger.claim(ctx, item); err != nil {
		if errors.Is(err, errAlreadyClaimed) {
			return d.failed(ctx, a, d.redelivered(ctx, req, item.RequestHash, a))
		}
		return d.failed(ctx, a, err)
	}
	var err error
	if rej != nil {
		err = d.reject(ctx, req, *rej, a)
	} else {
		err = d.launch(ctx, req, job, argv, a)
	}
	if err != nil {
		d.releaseClaim(ctx, req.RunID, item.LeaseUntil)
	}
	return d.failed(ctx, a, err)
}

// releaseClaim ends this invocation's lease on a run it failed to finish,
// so that Lambda's retry need not wait for the lease to run out. It is best
// effort: if it fails too, the lease simply expires.
func (d *Dispatcher) releaseClaim(ctx context.Context, runID string, lease time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, err := d.ledger.update(ctx, runID, map[string]string{protocol.LedgerLeaseUntil: stamp(d.now())}, cond{protocol.LedgerLeaseUntil, stamp(lease)})
	if err != nil && !errors.Is(err, errConditionFailed) {
		d.log.Warn("could not release the launch claim", "run_id", runID, "error", err.Error())
	}
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

// redelivered handles a run id that is already in the ledger. The same
// request delivered again finishes whatever the first delivery did not
// (a crash between the claim and the accepted record must not leave the
// trigger waiting) and repeats nothing that was done. A different request
// reusing the run id is refused in the audit log only: the queue belongs to
// the first one.
func (d *Dispatcher) redelivered(ctx context.Context, req *protocol.Request, hash string, a audit) error {
	for {
		prev, ok, err := d.ledger.get(ctx, req.RunID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("run %s was claimed but its ledger item is gone", req.RunID)
		}
		switch {
		case prev.Status == StatusCancelled && prev.RequestHash == "":
			if !prev.NotifiedAt.IsZero() {
				a.Decision, a.Reason = DecisionDuplicate, "the run was cancelled before its request arrived; already answered"
				d.write(ctx, a)
				return nil
			}
			// Answer on the run's queue, so a trigger still waiting ends at
			// once instead of at its cancel grace.
			return d.reject(ctx, req, rejection{protocol.RejectCancelled, "the run was cancelled before the broker handled its request; nothing was launched"}, a)
		case prev.RequestHash != hash:
			a.Decision, a.Reason = DecisionReplayed, "run id was already used by a different request"
			d.write(ctx, a)
			return nil
		case !prev.NotifiedAt.IsZero():
			a.Decision, a.Reason, a.TaskARN = DecisionDuplicate, "request already handled (status "+prev.Status+")", prev.TaskARN
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
			url, err := d.createQueue(ctx, req)
			if err != nil {
				return err
			}
			a.Reason = "finished an interrupted launch"
			return d.accept(ctx, req.RunID, req.Job, prev.TaskARN, url, a)
		case prev.Status == StatusRejected:
			return d.reject(ctx, req, rejection{prev.RejectCode, prev.Reason}, a)
		case prev.Status == StatusLaunching:
			done, err := d.resumeLaunch(ctx, req, prev, a)
			if done || err != nil {
				return err
			}
		default:
			a.Decision, a.Reason = DecisionDuplicate, "request already handled (status "+prev.Status+")"
			d.write(ctx, a)
			return nil
		}
	}
}

// resumeLaunch handles a delivery that finds the run claimed but not yet
// launched, and the claim's lease over: the delivery that claimed it died
// between the claim and recording the task. done is false when the ledger
// should be read again.
func (d *Dispatcher) resumeLaunch(ctx context.Context, req *protocol.Request, prev ledgerItem, a audit) (done bool, err error) {
	// Take the claim over first: of several deliveries that saw the same
	// expired lease, exactly one goes on.
	lease := d.leaseEnd(ctx)
	if err := d.ledger.takeOver(ctx, req.RunID, prev.LeaseUntil, lease); err != nil {
		if errors.Is(err, errConditionFailed) {
			return false, nil // another delivery took it: look again
		}
		return true, err
	}
	err = d.finishLaunch(ctx, req, prev, lease, a)
	if err != nil {
		d.releaseClaim(ctx, req.RunID, lease)
	}
	return true, err
}

// finishLaunch does what an interrupted launch left undone.
func (d *Dispatcher) finishLaunch(ctx context.Context, req *protocol.Request, prev ledgerItem, lease time.Time, a audit) error {
	// Did the interrupted invocation start the task after all?
	arn, err := d.findTask(ctx, req.RunID, true)
	if err != nil {
		return err
	}
	if arn != "" {
		url, err := d.createQueue(ctx, req)
		if err != nil {
			return err
		}
		a.Reason = "finished an interrupted launch"
		return d.accept(ctx, req.RunID, req.Job, arn, url, a)
	}
	var job config.Job
	var argv []string
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
		job, argv, rej = d.checkJob(req) // the catalogue may have changed since the claim
	}
	if rej != nil {
		url, err := d.createQueue(ctx, req)
		if err != nil {
			return err
		}
		return d.rejectLaunch(ctx, req.RunID, req.Job, url, *rej, lease, a)
	}
	return d.launch(ctx, req, job, argv, a)
}

// rejectLaunch ends a launch claim with a rejection, and never contradicts a
// task that exists: the ledger moves to rejected only while it is still
// launching and knows no task (an ECS event for the run's task records its
// ARN as soon as it arrives, see handleTaskEvent), and, with a non-zero
// lease, only while this invocation holds the claim. If the ledger learned
// of a task meanwhile, the run is accepted instead.
func (d *Dispatcher) rejectLaunch(ctx context.Context, runID, job, queueURL string, rej rejection, lease time.Time, a audit) error {
	conds := []cond{{protocol.LedgerStatus, StatusLaunching}, {protocol.LedgerTaskARN, ""}}
	if !lease.IsZero() {
		conds = append(conds, cond{protocol.LedgerLeaseUntil, stamp(lease)})
	}
	_, err := d.ledger.update(ctx, runID, map[string]string{protocol.LedgerStatus: StatusRejected, protocol.LedgerRejectCode: rej.code, protocol.LedgerReason: rej.reason}, conds...)
	if errors.Is(err, errConditionFailed) {
		it, ok, gerr := d.ledger.get(ctx, runID)
		switch {
		case gerr != nil:
			return gerr
		case ok && it.TaskARN != "":
			a.Reason = "a task exists for the run, so it is accepted rather than rejected (" + rej.code + ")"
			return d.accept(ctx, runID, job, it.TaskARN, queueURL, a)
		case ok && it.Status == StatusRejected:
			return d.rejectTo(ctx, runID, queueURL, rejection{it.RejectCode, it.Reason}, a)
		default:
			return fmt.Errorf("run %s changed in the ledger while its launch was being refused (status %q); will look again", runID, it.Status)
		}
	}
	if err != nil {
		return err
	}
	return d.rejectTo(ctx, runID, queueURL, rej, a)
}

// interruptedReason is the rejection of a launch claim that nobody finished.
const interruptedReason = "the broker was interrupted while starting the task and it is now too late to start it safely; start a new run"

// reject writes the rejected record to the run's queue (created for the
// purpose) and ends the run in the ledger.
func (d *Dispatcher) reject(ctx context.Context, req *protocol.Request, rej rejection, a audit) error {
	queueURL, err := d.createQueue(ctx, req)
	if err != nil {
		return err
	}
	return d.rejectTo(ctx, req.RunID, queueURL, rej, a)
}

func (d *Dispatcher) rejectTo(ctx context.Context, runID, queueURL string, rej rejection, a audit) error {
	rec := d.record(protocol.TypeRejected, protocol.SourceDispatcher, 1)
	rec.Rejected = &protocol.Rejected{Code: rej.code, Reason: rej.reason}
	if err := d.send(ctx, queueURL, runID, rec); err != nil {
		return err
	}
	now := stamp(d.now())
	if _, err := d.ledger.update(ctx, runID, map[string]string{protocol.LedgerQueueURL: queueURL, protocol.LedgerEndedAt: now, protocol.LedgerNotifiedAt: now}); err != nil {
		return err
	}
	a.Decision, a.Reason = DecisionRejected, rej.reason
	d.write(ctx, a)
	return nil
}

// launch starts the job's task and reports accepted; a launch that ECS
// refuses becomes a launch-failed rejection.
func (d *Dispatcher) launch(ctx context.Context, req *protocol.Request, job config.Job, argv []string, a audit) error {
	queueURL, err := d.createQueue(ctx, req)
	if err != nil {
		return err
	}
	// The job's deadline counts from the request, not from this invocation,
	// so that a retried launch sends RunTask exactly the same input as the
	// first attempt (ECS may refuse a clientToken reused with other input).
	taskARN, err := d.runTask(ctx, d.taskInput(req, job, argv, queueURL, req.RequestedAt))
	var lf *launchError
	if errors.As(err, &lf) {
		// A definite refusal: ECS answered and started nothing.
		return d.rejectLaunch(ctx, req.RunID, req.Job, queueURL, rejection{protocol.RejectLaunch, "could not start the task: " + lf.reason}, time.Time{}, a)
	}
	if err != nil {
		// Out of time, or an ambiguous failure (dropped connection, 5xx,
		// throttling): the task may exist. Lambda retries after the lease,
		// and the retry looks for the task before anything else.
		return err
	}
	return d.accept(ctx, req.RunID, req.Job, taskARN, queueURL, a)
}

// accept records the task in the ledger, then writes accepted. The ledger
// comes first so that a retry after a crash knows the task exists.
func (d *Dispatcher) accept(ctx context.Context, runID, job, taskARN, queueURL string, a audit) error {
	it, err := d.ledger.update(ctx, runID, map[string]string{protocol.LedgerStatus: StatusAccepted, protocol.LedgerTaskARN: taskARN, protocol.LedgerQueueURL: queueURL},
		cond{protocol.LedgerStatus, StatusLaunching})
	if errors.Is(err, errConditionFailed) {
		// An ECS event already recorded the task's end: keep that status.
		it, err = d.ledger.update(ctx, runID, map[string]string{protocol.LedgerTaskARN: taskARN, protocol.LedgerQueueURL: queueURL})
	}
	if err != nil {
		return err
	}
	rec := d.record(protocol.TypeAccepted, protocol.SourceDispatcher, 1)
	rec.Accepted = &protocol.Accepted{Job: job, TaskARN: taskARN, Account: d.set.AccountID,
		AccountAlias: d.cfg.Broker.AccountAlias, Region: d.set.Region}
	if err := d.send(ctx, queueURL, runID, rec); err != nil {
		return err
	}
	if _, err := d.ledger.update(ctx, runID, map[string]string{protocol.LedgerNotifiedAt: stamp(d.now())}); err != nil {
		return err
	}
	a.Decision, a.TaskARN = DecisionAccepted, taskARN
	d.write(ctx, a)
	if !it.CancelAsked.IsZero() {
		// A cancel arrived while the task was being started.
		if err := d.stopTask(ctx, runID, taskARN, cancelReason(it)); err != nil {
			return err
		}
	}
	return nil
}

// bound gives a context without a deadline (local mode, tests) the
// invocation time a Lambda would have, so that waits and leases are finite.
func (d *Dispatcher) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d.set.invocationTimeout())
}

// leaseEnd is when this invocation is certainly over, on the dispatcher's
// clock, with a margin for clock differences between Lambda hosts.
func (d *Dispatcher) leaseEnd(ctx context.Context) time.Time {
	left := d.set.invocationTimeout()
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	return d.now().Add(left + leaseMargin)
}

// leaseMargin covers clock differences between the hosts of two invocations.
const leaseMargin = 5 * time.Second

// timeLeft is how long this invocation may still wait or retry, keeping
// d.reserve for the bookkeeping that follows.
func (d *Dispatcher) timeLeft(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return d.set.invocationTimeout() - d.reserve
	}
	return time.Until(dl) - d.reserve
}

// pause sleeps for wait if the invocation has time for it; it reports
// whether it did.
func (d *Dispatcher) pause(ctx context.Context, wait time.Duration) bool {
	if d.timeLeft(ctx) < wait {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
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
