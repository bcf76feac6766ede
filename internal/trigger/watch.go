package trigger

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// watch is the state of one run being tailed: what has been heard from the
// dispatcher, ECS and the runner, and the clocks that end the wait.
type watch struct {
	app    *app
	cfg    *Config
	c      clients
	out    printer
	runID  string
	seq    *sequencer
	expect string // the account the run must land in

	published    time.Time
	queueURL     string
	lastWaitErr  error
	heardAny     bool
	accepted     *protocol.Accepted
	lastTask     *protocol.Task
	everRunning  bool
	stoppedAt    time.Time
	started      *protocol.Started
	startedAt    time.Time
	lastRunner   time.Time
	cancelAt     time.Time
	recancel     bool // a cancel went out before accepted: send it again once the task exists
	lines, bytes int64
	res          *Result
}

// tail follows the run until it ends and returns its result.
func (w *watch) tail(ctx context.Context) *Result {
	w.seq = newSequencer()
	w.res = &Result{RunID: w.runID, Job: w.cfg.Job, Region: w.cfg.Topic.Region, Account: w.expect, AccountAlias: w.cfg.AccountAlias}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	events := make(chan rxEvent)
	rx := &receiver{sqs: w.c.sqs, queueName: protocol.QueueName(w.cfg.Topic.Name, w.runID), owner: w.cfg.Topic.Account,
		wait: w.app.longPoll, retry: w.app.retry, now: w.app.now}
	go rx.run(rctx, events)
	ticker := time.NewTicker(w.app.tick)
	defer ticker.Stop()
	for {
		var err error
		select {
		case ev := <-events:
			err = w.onEvent(ctx, ev)
		case sig := <-w.app.signals:
			err = w.onSignal(ctx, sig)
		case <-ticker.C:
			err = w.onTick(ctx)
		case <-ctx.Done():
			err = exitcode.Errorf(exitcode.Cancelled, "run %s: interrupted (%v); the run may still be going", w.runID, ctx.Err())
		}
		if err != nil {
			return w.finish(err)
		}
	}
}

func (w *watch) finish(err error) *Result {
	w.res.Lines, w.res.Bytes = w.lines, w.bytes
	if !w.startedAt.IsZero() {
		w.res.Duration = w.app.now().Sub(w.startedAt)
	}
	if w.accepted != nil {
		w.res.TaskARN, w.res.Account, w.res.AccountAlias = w.accepted.TaskARN, w.accepted.Account, w.accepted.AccountAlias
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

func (w *watch) onEvent(ctx context.Context, ev rxEvent) error {
	switch {
	case ev.fatal != nil:
		return describeAWSError(ctx, w.c, ev.fatal, "reading run queue "+protocol.QueueName(w.cfg.Topic.Name, w.runID),
			"sqs:ReceiveMessage and sqs:DeleteMessage on the run queue (granted by the queue's policy)")
	case ev.waitErr != nil:
		w.lastWaitErr = ev.waitErr
		return nil
	case ev.queueURL != "":
		w.queueURL = ev.queueURL
		w.lastWaitErr = nil
		return nil
	}
	w.lastWaitErr = nil
	for _, m := range ev.msgs {
		recs, err := protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
		if err != nil {
			w.out.notice("ignoring a feedback message that is not valid: " + err.Error())
			continue
		}
		for _, r := range recs {
			w.heardAny = true
			if r.Src == protocol.SourceRunner {
				w.lastRunner = w.app.now()
			}
			for _, rr := range w.seq.add(r) {
				if err := w.onRecord(ctx, rr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (w *watch) onRecord(ctx context.Context, r protocol.Record) error {
	if err := w.out.record(r); err != nil {
		return exitcode.Errorf(exitcode.Broker, "writing the job's output: %w", err)
	}
	switch r.Type {
	case protocol.TypeRejected:
		return exitcode.Errorf(exitcode.Rejected, "the broker rejected the run (%s): %s", r.Rejected.Code, r.Rejected.Reason)
	case protocol.TypeAccepted:
		w.accepted = r.Accepted
		if r.Accepted.Account != w.expect {
			w.cancel(ctx, "the run landed in the wrong account")
			return exitcode.Errorf(exitcode.Safety, "the broker accepted the run in account %s, but %s was expected: stopped and sent a cancel; check the topic ARN and the environment", r.Accepted.Account, w.expect)
		}
		if w.cfg.AccountAlias != "" && r.Accepted.AccountAlias != "" && r.Accepted.AccountAlias != w.cfg.AccountAlias {
			w.out.notice(fmt.Sprintf("warning: account %s calls itself %q, not %q as the environment says", r.Accepted.Account, r.Accepted.AccountAlias, w.cfg.AccountAlias))
		}
		if w.recancel {
			w.recancel = false
			w.cancel(ctx, "")
		}
	case protocol.TypeTask:
		w.lastTask = r.Task
		if r.Task.Status == "RUNNING" {
			w.everRunning = true
		}
		if r.Task.Status == "STOPPED" && w.stoppedAt.IsZero() {
			w.stoppedAt = w.app.now()
		}
	case protocol.TypeStarted:
		w.started = r.Started
		w.startedAt = w.app.now()
		w.everRunning = true
	case protocol.TypeOutput:
		for _, l := range r.Output.Lines {
			if !l.Cont {
				w.lines++
			}
			w.bytes += int64(len(l.Text) + len(l.B64)*3/4)
		}
	case protocol.TypeExit:
		return w.exitOutcome(r.Exit)
	}
	return nil
}

// exitOutcome maps the runner's exit record to the trigger's result.
func (w *watch) exitOutcome(e *protocol.Exit) error {
	w.lines, w.bytes = e.Lines, e.Bytes
	if e.DurationMS > 0 {
		w.startedAt = w.app.now().Add(-time.Duration(e.DurationMS) * time.Millisecond)
	}
	msg := strings.TrimPrefix(e.Message, e.Reason+": ")
	switch e.Reason {
	case protocol.ReasonCompleted:
		if !w.cancelAt.IsZero() && e.Signal != "" {
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled: the job stopped on %s", w.runID, e.Signal)
		}
		code := e.Code
		if e.Signal != "" {
			code = 128 + signalNumber(e.Signal)
		}
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

func (w *watch) onSignal(ctx context.Context, sig os.Signal) error {
	if !w.cancelAt.IsZero() {
		return exitcode.Errorf(exitcode.Cancelled, "run %s: left at once on a second %v; the cancel request was sent, the task may still be stopping", w.runID, sig)
	}
	w.cancel(ctx, fmt.Sprintf("%v received", sig))
	return nil
}

// cancel publishes a cancel request (once per call) and starts the grace clock.
func (w *watch) cancel(ctx context.Context, why string) {
	if w.cancelAt.IsZero() {
		w.cancelAt = w.app.now()
	}
	if w.accepted == nil {
		w.recancel = true
	}
	if why != "" {
		w.out.notice(fmt.Sprintf("%s: cancelling run %s (waiting up to %s for the job to stop; interrupt again to leave at once)", why, w.runID, w.cfg.CancelGrace))
	}
	pctx, done := context.WithTimeout(ctx, 20*time.Second)
	defer done()
	if err := publish(pctx, w.c, w.cfg.Topic, newRequest(protocol.KindCancel, w.runID, w.app.now(), w.cfg.RequestTTL)); err != nil {
		w.out.notice("could not send the cancel request: " + err.Error())
	}
}

func (w *watch) onTick(ctx context.Context) error {
	now := w.app.now()
	w.out.tick(now)
	hb := w.heartbeatLimit()
	switch {
	case !w.stoppedAt.IsZero() && !now.Before(w.stopDeadline()):
		if err := w.flushGaps(ctx); err != nil {
			return err
		}
		return w.stoppedOutcome()
	case w.stoppedAt.IsZero() && !w.lastRunner.IsZero() && now.Sub(w.lastRunner) >= hb:
		if err := w.flushGaps(ctx); err != nil {
			return err
		}
		if w.cancelRequested() {
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled; the runner went silent without reporting its exit", w.runID)
		}
		return exitcode.Errorf(exitcode.LostRunner, "lost the runner of run %s: no heartbeat for %s%s", w.runID, hb.Round(time.Second), w.taskNote())
	case w.cancelRequested() && now.Sub(w.cancelAt) >= w.cfg.CancelGrace:
		return exitcode.Errorf(exitcode.Cancelled, "run %s: cancel requested, but the job did not report stopping within %s; the task may still be stopping", w.runID, w.cfg.CancelGrace)
	case w.lastRunner.IsZero() && now.Sub(w.published) >= w.cfg.StartTimeout:
		return exitcode.Errorf(exitcode.StartTimeout, "run %s did not start within %s: %s", w.runID, w.cfg.StartTimeout, w.lastKnown())
	}
	if d := w.overallDeadline(); !d.IsZero() && now.After(d) {
		w.cancel(ctx, "")
		return exitcode.Errorf(exitcode.Timeout, "run %s was still going after %s, the trigger's time limit: sent a cancel and gave up", w.runID, now.Sub(w.published).Round(time.Second))
	}
	return nil
}

func (w *watch) cancelRequested() bool { return !w.cancelAt.IsZero() }

// stopDeadline is until when to keep listening for the runner's exit record
// once ECS has reported the task STOPPED without one having arrived.
//
// In SQS the runner's records come before ECS's STOPPED on the run's FIFO
// message group, but a message whose receive answer was lost comes back
// only after its visibility timeout, and (in the emulator at least) after
// later ones. So "no gap seen" proves nothing: what the task's end says
// decides how long to wait.
func (w *watch) stopDeadline() time.Time {
	t := w.lastTask
	switch {
	case t.StopCode == "TaskFailedToStart" || (t.ExitCode == nil && !w.everRunning):
		return w.stoppedAt // the runner never ran: nothing can come
	case t.ExitCode == nil || *t.ExitCode == exitcode.Broker || *t.ExitCode == exitcode.Usage:
		// Killed without a code, or the runner said it could not deliver
		// (247) or had no configuration (240): only records already on
		// their way can come.
		return w.stoppedAt.Add(w.app.stopGrace)
	}
	// The runner ended with a code, which it does after delivering its exit
	// record: wait for it, as long as a redelivered message can take, but
	// never past the heartbeat watchdog once the runner has been heard.
	end := w.stoppedAt.Add(w.app.exitWait)
	if !w.lastRunner.IsZero() {
		if hb := w.lastRunner.Add(w.heartbeatLimit()); hb.Before(end) {
			end = hb
		}
	}
	return end
}

// heartbeatLimit is how long the runner may stay silent.
func (w *watch) heartbeatLimit() time.Duration {
	iv := 10 * time.Second
	if w.started != nil && w.started.HeartbeatSeconds > 0 {
		iv = time.Duration(w.started.HeartbeatSeconds) * time.Second
	}
	return time.Duration(w.cfg.MissedHeartbeats) * iv
}

func (w *watch) overallDeadline() time.Time {
	if w.cfg.Timeout > 0 {
		return w.published.Add(w.cfg.Timeout)
	}
	if w.started != nil && w.started.DeadlineUnixMilli > 0 {
		return time.UnixMilli(w.started.DeadlineUnixMilli).Add(5 * time.Minute)
	}
	return time.Time{}
}

// flushGaps gives up waiting for missing runner records and prints what
// arrived; an exit record among them decides the outcome.
func (w *watch) flushGaps(ctx context.Context) error {
	if !w.seq.waiting() {
		return nil
	}
	ready, missing := w.seq.flush()
	for _, m := range missing {
		w.out.notice(fmt.Sprintf("warning: runner records %d–%d never arrived; some output is missing", m[0], m[1]))
	}
	for _, r := range ready {
		if err := w.onRecord(ctx, r); err != nil {
			return err
		}
	}
	return nil
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
	case t.StopCode == "TaskFailedToStart" || (t.ExitCode == nil && !w.everRunning):
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
