package trigger

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func (w *watch) finish(err error) *Result {
	w.res.Lines, w.res.Bytes = w.lines, w.bytes
	if !w.startedAt.IsZero() {
		w.res.Duration = w.set.now().Sub(w.startedAt)
	}
	if w.accepted != nil {
		w.res.TaskARN, w.res.Account, w.res.AccountAlias = w.accepted.TaskARN, w.accepted.Account, w.accepted.AccountAlias
		w.res.RequestedBy = w.accepted.RequestedBy
		if w.accepted.Region != "" {
			w.res.Region = w.accepted.Region
		}
	} else if w.lastTask != nil {
		w.res.TaskARN = w.lastTask.TaskARN
	}
	w.res.Err = err
	w.res.Code = exitcode.Code(err)
	_, jobExit := err.(*exitcode.JobExit)
	if err == errJobSucceeded {
		w.res.Code, w.res.Err, jobExit = 0, nil, true
	}
	w.res.Outcome = outcomeName(w.res.Code, jobExit)
	if w.res.Err != nil && !jobExit {
		w.res.Message = w.res.Err.Error()
	}
	return w.res
}

var errJobSucceeded = fmt.Errorf("the job succeeded")

// exitOutcome maps the runner's exit record to the trigger's result.
func (w *watch) exitOutcome(e *protocol.Exit) error {
	w.lines, w.bytes = e.Lines, e.Bytes
	w.res.Outputs = e.Outputs
	if e.DurationMS > 0 {
		w.startedAt = w.set.now().Add(-time.Duration(e.DurationMS) * time.Millisecond)
	}
	if err := exitError(w.cfg.Job, w.runID, e, w.cancelRequested()); err != nil {
		return err
	}
	return errJobSucceeded
}

// exitError is deploy-trigger's end for an exit record, the live watch's and
// attach's alike: the code is protocol.ExitCode's, the one mapping; nil when
// the job succeeded. cancelAsked says a cancel was asked for the run.
func exitError(job, runID string, x *protocol.Exit, cancelAsked bool) error {
	code := protocol.ExitCode(*x, cancelAsked)
	msg := suffix(strings.TrimPrefix(x.Message, x.Reason+": "))
	switch {
	case code == 0:
		return nil
	case x.Reason == protocol.ReasonCompleted && code == exitcode.Cancelled && x.Signal != 0:
		return exitcode.Errorf(code, "run %s was cancelled: the job stopped on %s", runID, x.Signal)
	case x.Reason == protocol.ReasonCompleted:
		return &exitcode.JobExit{Code: code}
	case x.Reason == protocol.ReasonTimeout:
		return exitcode.Errorf(code, "job %s ran past its timeout and was stopped%s", job, msg)
	case x.Reason == protocol.ReasonCancelled:
		return exitcode.Errorf(code, "run %s was cancelled%s", runID, msg)
	case x.Reason == protocol.ReasonRunnerError:
		return exitcode.Errorf(code, "the runner could not run job %s%s", job, msg)
	}
	return exitcode.Errorf(code, "the runner ended with an unknown reason %q%s", x.Reason, msg)
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// stoppedOutcome is the result when ECS stopped the task and no exit record came.
func (w *watch) stoppedOutcome() error {
	t := w.lastTask
	why := t.StopCode
	if t.StoppedReason != "" {
		if why != "" {
			why += ": "
		}
		why += t.StoppedReason
	}
	if why == "" {
		why = "no reason given"
	}
	if t.ExitCode != nil {
		why += fmt.Sprintf(" (runner container exit code %d)", *t.ExitCode)
	}
	switch {
	case w.cancelRequested():
		return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled: the task stopped (%s)", w.runID, why)
	case t.StopCode == "TaskFailedToStart" || (t.ExitCode == nil && !w.everRunning && w.lastRunner.IsZero()):
		return exitcode.Errorf(exitcode.StartFailed, "the task of run %s failed to start: %s", w.runID, why)
	}
	return exitcode.Errorf(exitcode.LostRunner, "the task of run %s stopped without the runner reporting an exit: %s", w.runID, why)
}

func (w *watch) taskNote() string {
	if w.lastTask == nil {
		return ""
	}
	return " (task last seen " + w.lastTask.Status + ")"
}

// lastKnown says what was known when the start timeout passed.
func (w *watch) lastKnown() string {
	switch {
	case w.lastTask != nil:
		return "the task was last " + w.lastTask.Status + " and the runner never reported"
	case w.accepted != nil:
		return "the broker accepted it (task " + w.accepted.TaskARN + ") but the task never reported"
	case w.queueURL != "" && w.lastWaitErr != nil && isAccessDenied(w.lastWaitErr):
		return "the run queue exists but reading it is still denied: " + short(apiMessage(w.lastWaitErr), 200)
	case w.queueURL != "":
		return "the run queue exists but nothing arrived on it"
	case w.lastWaitErr != nil && isAccessDenied(w.lastWaitErr) && errors.As(w.lastWaitErr, new(*pointerError)):
		return "reading the run's pointer in the broker's view table is denied (" + short(apiMessage(w.lastWaitErr), 200) + "): the broker tells where a run's queue is there; " +
			"a principal of another account needs dynamodb:GetItem on " + viewTableARN(w.cfg.Topic) + " in its own IAM policy (docs/INFRA.md)"
	case w.lastWaitErr != nil && isAccessDenied(w.lastWaitErr):
		return "looking up the run queue is denied (" + short(apiMessage(w.lastWaitErr), 200) + "); is this principal trusted by the broker?"
	}
	return "no run queue appeared, so the broker never picked up the request; check that the dispatcher is subscribed to " + w.cfg.Topic.ARN
}
