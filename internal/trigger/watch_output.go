package trigger

import (
	"context"
	"fmt"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// defaultOutputStopWait is how long the trigger waits for a job it
// cancelled because its output could not be written (a broken pipe) to
// report stopping: briefly, since nobody reads what it says any more.
const defaultOutputStopWait = 30 * time.Second

// outputFailed handles a failed write of the run's output (stdout or stderr
// closed: "| head", a dead "| tee", a closed CI log stream). Nobody can see
// the job any more, so it must not run on unwatched: the rest of its output
// is discarded, a cancel is sent, and the watch waits briefly
// (outputStopWait, at most --cancel-grace) for the job to stop. The run then
// ends with exitcode.Cancelled whatever the job did (outputOutcome).
func (w *watch) outputFailed(ctx context.Context, err error) {
	if w.outputErr != nil {
		return
	}
	w.outputErr = err
	w.out = mutedPrinter{w.out}
	if w.exited || w.rejected || !w.mayBeRunning() {
		return
	}
	w.cancel(ctx, fmt.Sprintf("writing the job's output failed (%v)", err))
}

// cancelGrace is how long a cancelled job may take to report stopping.
func (w *watch) cancelGrace() time.Duration {
	if w.outputErr != nil && w.set.outputStopWait > 0 && w.set.outputStopWait < w.cfg.CancelGrace {
		return w.set.outputStopWait
	}
	return w.cfg.CancelGrace
}

// outputOutcome is the run's end once its output failed: exit code 245
// (cancelled), saying how the job itself ended.
func (w *watch) outputOutcome(err error) error {
	if w.outputErr == nil {
		return err
	}
	what := "the job had ended"
	if err != errJobSucceeded {
		what = err.Error()
	} else if w.cancelRequested() {
		what = "the job succeeded before the cancel reached it"
	}
	return exitcode.Errorf(exitcode.Cancelled, "writing the output failed (%v), so run %s was cancelled: %s", w.outputErr, w.runID, what)
}

// mutedPrinter drops the job's output lines once the output has failed;
// the trigger's own notices still go where they can.
type mutedPrinter struct{ printer }

func (m mutedPrinter) record(r protocol.Record) error {
	if r.Type == protocol.TypeOutput {
		return nil
	}
	_ = m.printer.record(r)
	return nil
}
