package trigger

import (
	"fmt"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// How logs and attach end without the run's exit record (cmd_logs.go):
// detached by Ctrl-C, or on a run the ledger says has ended.

// detachedError is Ctrl-C on a follower that does not cancel: the follower
// stops, the run goes on. attach exits 245 with it, logs --follow 0.
type detachedError struct{ runID, env string }

func (d *detachedError) Error() string {
	return fmt.Sprintf("detached from run %s: it goes on (%s to get back onto it)", d.runID, runCommand("attach", d.env, d.runID))
}

// endedWithoutExit ends a follower on a run the ledger says has ended
// while its log has no exit record: with the code the ledger's outcome
// gives (the runner container's exit code, which is protocol.ExitCode of
// its exit record; 245 for a cancelled run; 242 for a task that never
// started; 243 otherwise). logs exits 0, saying how the run ended.
func (f *logFollower) endedWithoutExit(r historyRun) error {
	f.found, f.ledgerEnd = r, true
	it := r.item
	var err error
	switch {
	case r.Outcome == ledger.OutcomeCancelled:
		err = exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled (run ledger: %s)", r.RunID, r.Status)
	case it.ExitCode != nil && *it.ExitCode == 0:
	case it.ExitCode != nil && exitcode.Name(*it.ExitCode) == "":
		err = &exitcode.JobExit{Code: *it.ExitCode}
	case it.ExitCode != nil:
		err = exitcode.Errorf(*it.ExitCode, "run %s ended with the runner's exit code %d (%s)", r.RunID, *it.ExitCode, exitcode.Name(*it.ExitCode))
	case it.StopCode == "TaskFailedToStart":
		err = exitcode.Errorf(exitcode.StartFailed, "the task of run %s failed to start: %s", r.RunID, it.StopReason)
	default:
		err = exitcode.Errorf(exitcode.LostRunner, "run %s ended (%s) without an exit record", r.RunID, r.Outcome)
	}
	f.say("run %s ended (%s in the run ledger) and its log has no exit record: its outcome is the ledger's", r.RunID, r.Outcome)
	if !f.attach {
		return nil
	}
	if isJobExit(err) {
		f.say("job %s failed with exit code %d", r.Job, exitcode.Code(err))
	} else if err == nil {
		f.say("job %s succeeded", r.Job)
	}
	return err
}
