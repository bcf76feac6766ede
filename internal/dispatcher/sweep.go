package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// maxRunTime is the longest a run may legitimately keep its queue: the
// longest job timeout, plus the request's own validity, plus retention.
func (d *Dispatcher) maxRunTime() time.Duration {
	var longest time.Duration
	for _, j := range d.cfg.Jobs {
		longest = max(longest, j.Timeout.D())
	}
	return longest + d.cfg.Broker.MaxRequestAge.D() + d.cfg.Broker.QueueRetention.D()
}

// Sweep deletes the queues of runs that ended longer ago than the queue
// retention, and of runs older than the longest possible run (marking them
// abandoned in the ledger), so a crashed CI job leaks nothing. It also
// answers runs whose launch was interrupted and never resumed, so that
// their trigger is not left waiting.
//
// A failure on one queue is logged and the pass goes on with the next. The
// pass returns an error (so that Lambda retries it and, failing that, the
// dead-letter alarm shows it) only when a failure may pass with time:
// throttling, server errors, dropped connections, the invocation's time
// running out. A refusal that repeating cannot change (access denied, a
// validation error) is only logged: the next pass tries that queue again,
// and one permanently bad queue does not send every pass to the
// dead-letter queue.
func (d *Dispatcher) Sweep(ctx context.Context) error {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	prefix := d.cfg.Broker.Name + "-"
	now := d.now()
	var token *string
	deleted, kept, failed := 0, 0, 0
	var retry []error
	// Concurrency slots first: free what lost events or crashed
	// invocations hold, start what waits (concurrency.go).
	if err := d.reconcileSlots(ctx); err != nil {
		retry = append(retry, err)
	}
	held, err := d.ReconcileWarm(ctx) // warmsweep.go
	if err != nil {
		d.log.Warn("sweep could not reconcile warm runners", "error", oneLine(err.Error()))
		held = nil // not every slot is known: no inbox is deleted this pass
		if transient(err) {
			retry = append(retry, err)
		}
	}
	for {
		out, err := d.sqs.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix), NextToken: token, MaxResults: aws.Int32(1000)})
		if err != nil {
			retry = append(retry, fmt.Errorf("listing run queues: %w", err))
			break
		}
		for _, url := range out.QueueUrls {
			name := url[strings.LastIndex(url, "/")+1:]
			runID := strings.TrimSuffix(strings.TrimPrefix(name, prefix), ".fifo")
			if slot := strings.TrimPrefix(name, prefix); protocol.ValidWarmSlotID(slot) {
				if del, err := d.sweepInbox(ctx, url, slot, held, now); err != nil || del {
					d.log.Info("sweep: inbox of no warm runner", "queue_url", url, "deleted", del, "error", err)
				}
				continue
			}
			if protocol.ValidateRunID(runID) != nil || !strings.HasSuffix(name, ".fifo") {
				continue // not a run queue of this broker
			}
			if ctx.Err() != nil {
				retry = append(retry, fmt.Errorf("the sweep ran out of time at run %s: %w", runID, ctx.Err()))
				break
			}
			del, err := d.sweepQueue(ctx, url, runID, now) // spare.go
			switch {
			case err != nil:
				failed++
				again := transient(err) || ctx.Err() != nil
				d.log.Warn("sweep could not handle a run queue; going on with the next", "run_id", runID, "queue_url", url,
					"error", oneLine(err.Error()), "retried", again)
				if again {
					retry = append(retry, fmt.Errorf("run %s: %w", runID, err))
				}
			case del:
				deleted++
			default:
				kept++
			}
		}
		if out.NextToken == nil || ctx.Err() != nil {
			break
		}
		token = out.NextToken
	}
	d.log.Info("sweep done", "deleted", deleted, "kept", kept, "failed", failed)
	if len(retry) > 0 {
		return fmt.Errorf("sweep: %d failure(s) that a retry may resolve (first: %w)", len(retry), retry[0])
	}
	return nil
}

// sweepOne decides about one run queue and acts; it reports whether the
// queue was deleted.
func (d *Dispatcher) sweepOne(ctx context.Context, url, runID string, now time.Time) (bool, error) {
	born, err := protocol.RunIDTime(runID)
	if err != nil {
		return false, nil
	}
	item, ok, err := d.ledger.Get(ctx, runID)
	if err != nil {
		return false, err
	}
	a := audit{RunID: runID, Job: item.Job}
	retention := d.cfg.Broker.QueueRetention.D()
	if ok && (item.Status == ledger.Queued || item.Status == ledger.AwaitingApproval) && d.queuedExpired(item, now) {
		// A waiting run whose request expired (also one a lost answer left
		// outside the slot item): refuse it rather than leave it waiting.
		return false, d.rejectWaiting(ctx, runID, item.Status, rejection{protocol.RejectExpired, "the request expired while the run waited (" + string(item.Status) + "); send it again"})
	}
	if ok && item.Status == ledger.Rejected && item.QueuedRequest != "" && item.NotifiedAt.IsZero() && item.EndedAt.IsZero() {
		// A waiting run the ledger ended (cancel, release, expiry,
		// approver) whose answer to its trigger failed afterwards: answer
		// it now rather than when it is abandoned.
		return false, d.answerRejection(ctx, item, rejection{item.RejectCode, item.Reason})
	}
	if ok && item.Status == ledger.Launching && now.After(item.LeaseUntil) &&
		now.Sub(item.CreatedAt) > d.cfg.Broker.MaxRequestAge.D()+d.cfg.Broker.ClockSkew.D() {
		return false, d.finishStale(ctx, url, item, a)
	}
	var why string
	abandoned := false
	switch {
	case ok && rejectedQueue(item) && now.Sub(item.NotifiedAt) > d.cfg.Broker.RejectedQueueRetention.D():
		// A refused run's queue holds one record, read by the trigger within
		// seconds: it need not wait out the retention of a run's output, and
		// a flood of refused requests does not leave queues for an hour.
		why = fmt.Sprintf("run was rejected (%s) %s ago, retention of rejected runs %s", item.RejectCode,
			now.Sub(item.NotifiedAt).Round(time.Second), d.cfg.Broker.RejectedQueueRetention.D())
	case ok && !item.EndedAt.IsZero() && now.Sub(item.EndedAt) > retention:
		why = fmt.Sprintf("run ended %s ago, retention %s", now.Sub(item.EndedAt).Round(time.Second), retention)
	case now.Sub(born) > d.maxRunTime():
		abandoned = ok && item.EndedAt.IsZero()
		why = fmt.Sprintf("run started %s ago, longer than any run may last (%s)", now.Sub(born).Round(time.Second), d.maxRunTime())
	default:
		return false, nil
	}
	if err := d.deleteQueue(ctx, url); err != nil {
		return false, err
	}
	if abandoned {
		it, err := d.ledger.Abandon(ctx, runID, now)
		if err != nil && !errors.Is(err, ledger.ErrConditionFailed) {
			d.log.Warn("could not mark run abandoned", "run_id", runID, "error", err.Error())
		}
		if err == nil {
			d.emit(ctx, d.endedEvent(it, nil, "", now))
			d.freeRunSlot(ctx, it)
		}
		why += "; marked abandoned"
	}
	a.Decision, a.Reason = DecisionSwept, why
	d.write(ctx, a)
	return true, nil
}

// finishStale ends a launch claim that no delivery finished in time: if the
// task exists after all it is reported accepted, else the run is rejected.
func (d *Dispatcher) finishStale(ctx context.Context, url string, item ledger.Item, a audit) error {
	lease := d.leaseEnd(ctx)
	if err := d.ledger.TakeOver(ctx, item.RunID, item.LeaseUntil, lease); err != nil {
		if errors.Is(err, ledger.ErrConditionFailed) {
			return nil // a delivery is at it again
		}
		return err
	}
	arn := item.TaskARN // an ECS event may have named the task
	if arn == "" {
		// A run given to a warm runner whose launch stopped before the
		// ledger recorded it (warm.go): the slot names the run.
		if w, err := d.assignedSlot(ctx, item.Job, item.RunID); err != nil || w.slot != "" {
			if err != nil {
				return err
			}
			a.Reason = "finished an interrupted launch on warm runner " + w.slot + " (sweep)"
			return d.acceptWith(ctx, item.RunID, item.Job, w.task, url, a, w.warmStart)
		}
	}
	if arn == "" {
		var err error
		if arn, err = d.findTask(ctx, item.RunID, true); err != nil {
			return err
		}
	}
	if arn != "" {
		a.Reason = "finished an interrupted launch (sweep)"
		return d.accept(ctx, item.RunID, item.Job, arn, url, a)
	}
	return d.rejectLaunch(ctx, item.RunID, item.Job, url, rejection{protocol.RejectLaunch, interruptedReason}, lease, a)
}

// rejectedQueue reports whether a run ended in a rejection answered on its
// queue, with no task (a task's records need the full queue retention).
func rejectedQueue(it ledger.Item) bool {
	return (it.Status == ledger.Rejected || it.Status == ledger.Cancelled) && it.TaskARN == "" && !it.NotifiedAt.IsZero()
}
