package trigger

import (
	"context"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// attach reports the exit code ECS reports (issue 22). The run log's exit
// record is the runner's word, and a job that shares the runner's output
// could write one of its own; the container exit code ECS reports, which
// the dispatcher keeps in the ledger when the task stops, is the runner's
// real end. So attach, having read the exit record, waits (at most
// --lost-after) for the ledger to record the task's end, and where the two
// disagree reports ECS's code, says so, and drops the record's outputs.

// ecsExit returns the exit record attach ends on: x, or, when the ledger's
// exit code (ECS's) disagrees with it, a record of ECS's code without
// outputs. run is the ledger's run as last read.
func (f *logFollower) ecsExit(ctx context.Context, run historyRun, x *protocol.Exit) (historyRun, *protocol.Exit, error) {
	deadline := f.app.now().Add(f.cli.LostAfter)
	for ledger.Pending(run.Outcome) {
		if !f.app.now().Before(deadline) {
			f.say("run %s: the task's end is not in the run ledger after %s; reporting the run log's exit record, which ECS has not confirmed", f.cli.RunID, f.cli.LostAfter)
			return run, x, nil
		}
		if err := f.wait(ctx); err != nil {
			return run, nil, err
		}
		r, ok, err := f.h.get(ctx, f.cli.RunID)
		if err != nil {
			return run, nil, err
		}
		if ok {
			run = r
		}
	}
	if run.ExitCode == nil || protocol.ExitCode(*x, false) == *run.ExitCode {
		return run, x, nil
	}
	f.say("run %s: the run log's exit record says exit code %d, but ECS reports the runner container exited %d: reporting ECS's, without the record's outputs (the job may have written the record itself)",
		f.cli.RunID, protocol.ExitCode(*x, false), *run.ExitCode)
	return run, &protocol.Exit{Code: *run.ExitCode, Reason: protocol.ReasonCompleted, DurationMS: x.DurationMS, Lines: x.Lines, Bytes: x.Bytes,
		Message: "exit code as ECS reports it"}, nil
}
