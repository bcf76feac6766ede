package trigger

import (
	"context"
	"fmt"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// outputFailed handles a failed write of the run's output (stdout closed:
// "| head", a dead "| tee", a closed CI log stream). A deploy cut in half is
// worse than an unwatched one, so the run goes on: the job's lines are no
// longer printed, stderr says once (when it still works) how to follow the
// run, and the watch goes on to the run's end and its exit code. Ctrl-C
// still cancels.
func (w *watch) outputFailed(_ context.Context, err error) {
	if w.outputErr != nil {
		return
	}
	w.outputErr = err
	w.out = mutedPrinter{w.out}
	if w.set.stderr == nil {
		return
	}
	// Straight to stderr: the printer's notices go to stdout in the json
	// and github modes.
	_, _ = fmt.Fprintf(w.set.stderr, "deploy-trigger: %s\n", outputClosedNotice(w.runID, w.cfg.Env, err, w.exited || w.rejected))
	_ = w.set.flush()
}

// outputClosedNotice is what the trigger says once its output closed
// (ended: the run's end had already arrived); env is the --env given.
func outputClosedNotice(runID, env string, err error, ended bool) string {
	if ended {
		return fmt.Sprintf("the output closed (%v): the job's last lines were not printed (%s shows them)", err, runCommand("logs", env, runID))
	}
	return fmt.Sprintf("the output closed (%v): no more job lines are printed here; run %s goes on and deploy-trigger waits for its end and exit code "+
		"(follow it with: %s, or %s; Ctrl-C cancels it)", err, runID, runCommand("logs --follow", env, runID), runCommand("attach", env, runID))
}

// runCommand is "deploy-trigger VERB [--env ENV] RUN_ID", a command to
// paste: with the --env the user gave, which a shell without
// DEPLOY_TRIGGER_TOPIC_ARN needs to find the broker.
func runCommand(verb, env, runID string) string {
	if env != "" {
		verb += " --env " + env
	}
	return "deploy-trigger " + verb + " " + runID
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
