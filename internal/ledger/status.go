package ledger

// Status is where a run is in the ledger (AttrStatus).
type Status string

// Run statuses. A run is claimed launching (or, cancelled before its run
// request came, cancelled), may wait queued or awaiting-approval, and ends
// accepted → stopped, rejected or abandoned.
const (
	Launching        Status = "launching"         // claimed; the task is being started
	Queued           Status = "queued"            // waits for a concurrency slot; its request is kept
	AwaitingApproval Status = "awaiting-approval" // waits for an approver's decision; its request is kept
	Accepted         Status = "accepted"          // RunTask succeeded
	Stopped          Status = "stopped"           // ECS reported the task STOPPED
	Rejected         Status = "rejected"          // refused; nothing was launched
	Abandoned        Status = "abandoned"         // the sweep found it without an end
	Cancelled        Status = "cancelled"         // a cancel came before the run request: the run id is closed
)

// Statuses are all the statuses a run can have.
func Statuses() []Status {
	return []Status{Launching, Queued, AwaitingApproval, Accepted, Stopped, Rejected, Abandoned, Cancelled}
}

// Waiting says the run is held with its request, not yet launched.
func (s Status) Waiting() bool { return s == Queued || s == AwaitingApproval }

// Outcomes of a run as the history commands show them (Outcome).
const (
	OutcomeRunning          = "running"
	OutcomeQueued           = string(Queued)
	OutcomeAwaitingApproval = string(AwaitingApproval)
	OutcomeSucceeded        = "succeeded"
	OutcomeFailed           = "failed"
	OutcomeStopped          = string(Stopped) // stopped with no exit code known
	OutcomeRejected         = string(Rejected)
	OutcomeCancelled        = string(Cancelled)
	OutcomeAbandoned        = string(Abandoned)
)

// Outcomes are all the words Outcome gives, the pending ones first.
func Outcomes() []string {
	return []string{OutcomeQueued, OutcomeAwaitingApproval, OutcomeRunning, OutcomeSucceeded, OutcomeFailed,
		OutcomeStopped, OutcomeRejected, OutcomeCancelled, OutcomeAbandoned}
}

// Outcome is one word for where a run is or how it ended: the task's exit
// code decides between succeeded and failed, a cancel asked makes a stopped
// run cancelled. An unknown status is its own word.
func Outcome(it Item) string {
	switch it.Status {
	case Launching, Accepted:
		return OutcomeRunning
	case Queued, AwaitingApproval, Rejected, Cancelled, Abandoned:
		return string(it.Status)
	case Stopped:
		switch {
		case it.CancelRequested():
			return OutcomeCancelled
		case it.ExitCode != nil && *it.ExitCode == 0:
			return OutcomeSucceeded
		case it.ExitCode != nil:
			return OutcomeFailed
		}
		return OutcomeStopped
	}
	return string(it.Status)
}

// Pending says an outcome is not an end: the run waits or runs, and a
// follower (attach, logs --follow) waits for it.
func Pending(outcome string) bool {
	return outcome == OutcomeRunning || outcome == OutcomeQueued || outcome == OutcomeAwaitingApproval
}
