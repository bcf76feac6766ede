package ledger

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// The dispatcher's writes, one method per decision. Each is one update of
// the run's item; a conditional one fails with ErrConditionFailed when the
// run is no longer as the decision requires (another invocation decided
// first), and carries a write token so that a repeat of our own write whose
// answer was lost is known as ours.

// ReleaseLease ends this invocation's launch claim (lease) at now, if it
// still holds it.
func (l *Store) ReleaseLease(ctx context.Context, runID string, lease, now time.Time) error {
	_, err := l.update(ctx, runID, map[string]string{AttrLeaseUntil: Stamp(now)}, cond{AttrLeaseUntil, Stamp(lease)})
	return err
}

// Reject ends a launch claim with a rejection, only while the run is
// launching and knows no task, and, with a non-zero lease, only while that
// lease holds the claim.
func (l *Store) Reject(ctx context.Context, runID, code, reason string, lease time.Time) error {
	conds := []cond{{AttrStatus, string(Launching)}, {AttrTaskARN, ""}}
	if !lease.IsZero() {
		conds = append(conds, cond{AttrLeaseUntil, Stamp(lease)})
	}
	_, err := l.update(ctx, runID, map[string]string{AttrStatus: string(Rejected), AttrRejectCode: code, AttrReason: reason}, conds...)
	return err
}

// RejectionSent records that the rejection went to the run's queue: the
// run has ended.
func (l *Store) RejectionSent(ctx context.Context, runID, queueURL string, now time.Time) (Item, error) {
	return l.update(ctx, runID, map[string]string{AttrQueueURL: queueURL, AttrEndedAt: Stamp(now), AttrNotifiedAt: Stamp(now)})
}

// Start records the run's task: accepted, if the run is still launching;
// otherwise (an ECS event recorded the task's end first) the status stays
// and only the task and queue are recorded.
func (l *Store) Start(ctx context.Context, runID, taskARN, queueURL string) (Item, error) {
	return l.start(ctx, runID, map[string]string{AttrTaskARN: taskARN, AttrQueueURL: queueURL})
}

func (l *Store) start(ctx context.Context, runID string, set map[string]string) (Item, error) {
	accepted := map[string]string{AttrStatus: string(Accepted)}
	for k, v := range set {
		accepted[k] = v
	}
	it, err := l.update(ctx, runID, accepted, cond{AttrStatus, string(Launching)})
	if errors.Is(err, ErrConditionFailed) {
		it, err = l.update(ctx, runID, set)
	}
	return it, err
}

// AcceptanceSent records that accepted went to the run's queue.
func (l *Store) AcceptanceSent(ctx context.Context, runID string, now time.Time) error {
	_, err := l.update(ctx, runID, map[string]string{AttrNotifiedAt: Stamp(now)})
	return err
}

// RecordTask records the run's task as soon as the first ECS event names it,
// if the ledger knows none yet.
func (l *Store) RecordTask(ctx context.Context, runID, taskARN string) (Item, error) {
	return l.update(ctx, runID, map[string]string{AttrTaskARN: taskARN}, cond{AttrTaskARN, ""})
}

// RecordTaskStart records the times of the run's task start that ts knows
// (from an ECS task event), unconditionally: every event of the task gives
// the same times, so a repeat or a late event rewrites the same values.
func (l *Store) RecordTaskStart(ctx context.Context, runID string, ts TaskStart) (Item, error) {
	set := ts.attrs()
	if len(set) == 0 {
		return Item{}, errors.New("recording a task start without any time")
	}
	return l.update(ctx, runID, set)
}

// End is how a run's task ended, from ECS's STOPPED event.
type End struct {
	At         time.Time
	TaskARN    string // recorded when the ledger knew none
	StopCode   string
	StopReason string
	ExitCode   *int   // the runner container's, as ECS reports it
	Outputs    string // the job's outputs as JSON, from the run log ("" none)
	// LogExitCode is the exit code the run log's exit record gives, set only
	// when it differs from ExitCode (which the ledger keeps: ECS wins).
	LogExitCode *int
}

// Finish records the end of the run's task: stopped.
func (l *Store) Finish(ctx context.Context, runID string, e End) (Item, error) {
	set := map[string]string{AttrStatus: string(Stopped), AttrEndedAt: Stamp(e.At), AttrStopCode: e.StopCode, AttrStopReason: e.StopReason}
	if e.TaskARN != "" {
		set[AttrTaskARN] = e.TaskARN
	}
	if e.ExitCode != nil {
		set[AttrExitCode] = strconv.Itoa(*e.ExitCode)
	}
	if e.Outputs != "" {
		set[AttrOutputs] = e.Outputs
	}
	if e.LogExitCode != nil {
		set[AttrLogExitCode] = strconv.Itoa(*e.LogExitCode)
	}
	return l.update(ctx, runID, set)
}

// Abandon ends a run the sweep found without an end, if it has none still.
func (l *Store) Abandon(ctx context.Context, runID string, now time.Time) (Item, error) {
	return l.update(ctx, runID, map[string]string{AttrStatus: string(Abandoned), AttrEndedAt: Stamp(now)}, cond{AttrEndedAt, ""})
}

// MarkEnded records that a run has ended with nobody to tell (its queue is
// gone).
func (l *Store) MarkEnded(ctx context.Context, runID string, now time.Time) error {
	_, err := l.update(ctx, runID, map[string]string{AttrEndedAt: Stamp(now)})
	return err
}

// AskCancel records a cancel asked by the verified principal by.
func (l *Store) AskCancel(ctx context.Context, runID, by string, now time.Time) error {
	_, err := l.update(ctx, runID, map[string]string{AttrCancelAsked: Stamp(now), AttrCancelledBy: by})
	return err
}

// TaskStopped records that StopTask was called for a cancel (by, when known,
// the verified principal of the cancel).
func (l *Store) TaskStopped(ctx context.Context, runID, by string, now time.Time) error {
	set := map[string]string{AttrCancelledAt: Stamp(now)}
	if by != "" {
		set[AttrCancelledBy] = by
	}
	_, err := l.update(ctx, runID, set)
	return err
}

// Release records that the run's trigger let go of it.
func (l *Store) Release(ctx context.Context, runID string, now time.Time) error {
	_, err := l.update(ctx, runID, map[string]string{AttrReleasedAt: Stamp(now)})
	return err
}

// Hold keeps a launching run that may not launch yet in status (Queued,
// AwaitingApproval) with its request, and gives up the launch lease.
func (l *Store) Hold(ctx context.Context, runID string, status Status, request, queueURL string, now time.Time) error {
	_, err := l.update(ctx, runID, map[string]string{AttrStatus: string(status), AttrQueuedRequest: request,
		AttrQueuedAt: Stamp(now), AttrQueueURL: queueURL, AttrLeaseUntil: Stamp(now)},
		cond{AttrStatus, string(Launching)})
	return err
}

// Decision is an approver's decision, recorded with the transition it makes.
type Decision struct {
	Approved bool
	By       string // the approver's verified principal
	At       time.Time
}

func (d *Decision) set(m map[string]string) {
	if d == nil {
		return
	}
	m[AttrApproval], m[AttrApprovalBy], m[AttrApprovalAt] = ApprovalRejected, d.By, Stamp(d.At)
	if d.Approved {
		m[AttrApproval] = ApprovalApproved
	}
}

// EndWaiting moves a run held in status to rejected (with an approver's
// decision, if any, in the same write), if it is still in that status.
func (l *Store) EndWaiting(ctx context.Context, runID string, status Status, code, reason string, d *Decision) (Item, error) {
	set := map[string]string{AttrStatus: string(Rejected), AttrRejectCode: code, AttrReason: reason}
	d.set(set)
	return l.update(ctx, runID, set, cond{AttrStatus, string(status)})
}

// StartWaiting moves a run held in status to launching under lease (with
// an approver's decision, if any, in the same write), if it is still in that
// status: of several invocations that try, one does.
func (l *Store) StartWaiting(ctx context.Context, runID string, status Status, lease time.Time, d *Decision) (Item, error) {
	set := map[string]string{AttrStatus: string(Launching), AttrLeaseUntil: Stamp(lease)}
	d.set(set)
	return l.update(ctx, runID, set, cond{AttrStatus, string(status)})
}
