package trigger

import (
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
	msg := strings.TrimPrefix(e.Message, e.Reason+": ")
	switch e.Reason {
	case protocol.ReasonCompleted:
		if !w.cancelAt.IsZero() && e.Signal != "" {
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled: the job stopped on %s", w.runID, e.Signal)
		}
		code := exitShown(e) // as attach shows it (cmd_logs.go)
		if code == 0 {
			return errJobSucceeded
		}
		if code < 0 {
			code = 1
		}
		return &exitcode.JobExit{Code: code}
	case protocol.ReasonTimeout:
		return exitcode.Errorf(exitcode.Timeout, "job %s ran past its timeout and was stopped%s", w.cfg.Job, suffix(msg))
	case protocol.ReasonCancelled:
		return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled%s", w.runID, suffix(msg))
	case protocol.ReasonRunnerError:
		return exitcode.Errorf(exitcode.StartFailed, "the runner could not run job %s%s", w.cfg.Job, suffix(msg))
	}
	return exitcode.Errorf(exitcode.LostRunner, "the runner ended with an unknown reason %q%s", e.Reason, suffix(msg))
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
	case w.lastWaitErr != nil && isAccessDenied(w.lastWaitErr):
		return "looking up the run queue is denied (" + short(apiMessage(w.lastWaitErr), 200) + "); is this principal trusted by the broker?"
	}
	return "no run queue appeared, so the broker never picked up the request; check that the dispatcher is subscribed to " + w.cfg.Topic.ARN
}

// signalNumber maps a signal name ("killed", "SIGKILL", "KILL", "9") to its number.
func signalNumber(s string) int {
	names := map[string]int{"hangup": 1, "interrupt": 2, "quit": 3, "illegal instruction": 4, "trace/breakpoint trap": 5,
		"aborted": 6, "bus error": 7, "floating point exception": 8, "killed": 9, "user defined signal 1": 10,
		"segmentation fault": 11, "user defined signal 2": 12, "broken pipe": 13, "alarm clock": 14, "terminated": 15}
	short := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
		"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}
	if n, ok := names[strings.ToLower(s)]; ok {
		return n
	}
	if n, ok := short[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return n
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 && n < 128 {
		return n
	}
	if strings.HasPrefix(s, "signal ") {
		if _, err := fmt.Sscanf(s, "signal %d", &n); err == nil && n > 0 && n < 128 {
			return n
		}
	}
	return 9
}
