package trigger

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

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

	exited      bool // the runner's exit record arrived
	rejected    bool // the broker refused the run
	leftAtOnce  bool // a second signal: leave without waiting, cancelling or releasing
	openLine    map[protocol.Stream]bool
	cancelCh    chan cancelResult // the cancel request being published, if any
	cancelAgain bool              // publish another cancel once the one in flight is done
	cancelOK    bool              // a cancel published after the run was accepted went out
	cancelErr   error             // why the last cancel request could not be published
}

// cancelResult is how one background cancel publish ended.
type cancelResult struct {
	err         error
	afterAccept bool // it was sent after the accepted record had arrived
}

// cancelPublishTimeout bounds one cancel publish (the SDK retries within it).
const cancelPublishTimeout = 20 * time.Second

// tail follows the run until it ends and returns its result.
func (w *watch) tail(ctx context.Context) *Result {
	w.seq = newSequencer()
	w.openLine = map[protocol.Stream]bool{}
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
		case r := <-w.cancelCh:
			w.cancelPublished(ctx, r, false)
		case <-ticker.C:
			err = w.onTick(ctx)
		case <-ctx.Done():
			err = exitcode.Errorf(exitcode.Cancelled, "run %s: interrupted (%v)", w.runID, ctx.Err())
		}
		if ferr := w.app.out.Flush(); ferr != nil && err == nil {
			err = exitcode.Errorf(exitcode.Broker, "writing the job's output: %w", ferr)
		}
		if err != nil {
			stop()
			return w.finish(w.settle(ctx, err))
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
		if m.err != nil {
			w.out.notice("ignoring a feedback message that is not valid: " + m.err.Error())
			continue
		}
		for _, r := range m.recs {
			w.heardAny = true
			if r.Src == protocol.SourceRunner {
				w.lastRunner = w.app.now()
			}
			ready, missing := w.seq.add(r, w.app.now())
			if err := w.release(ctx, ready, missing); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *watch) onRecord(ctx context.Context, r protocol.Record) error {
	if r.Type == protocol.TypeOutput {
		r = w.decodableLines(r)
	}
	if err := w.out.record(r); err != nil {
		return exitcode.Errorf(exitcode.Broker, "writing the job's output: %w", err)
	}
	switch r.Type {
	case protocol.TypeRejected:
		w.rejected = true
		if r.Rejected.Code == protocol.RejectCancelled {
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled before the broker started it: %s", w.runID, r.Rejected.Reason)
		}
		return exitcode.Errorf(exitcode.Rejected, "the broker rejected the run (%s): %s", r.Rejected.Code, r.Rejected.Reason)
	case protocol.TypeAccepted:
		w.accepted = r.Accepted
		if r.Accepted.Account != w.expect {
			// settle sends the cancel.
			return exitcode.Errorf(exitcode.Safety, "the broker accepted the run in account %s, but %s was expected: stopped; check the topic ARN and the environment", r.Accepted.Account, w.expect)
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
		w.exited = true
		return w.exitOutcome(r.Exit)
	}
	return nil
}

// decodableLines returns r without the line pieces whose bytes cannot be
// decoded (bad base64), each reported as a warning: one bad piece must not
// end the run. A bad piece that ended a line already begun is replaced by
// an empty one, so the line still ends where the job ended it.
func (w *watch) decodableLines(r protocol.Record) protocol.Record {
	var kept []protocol.Line
	bad := false
	for i, l := range r.Output.Lines {
		if _, err := l.Bytes(); err != nil {
			if !bad {
				kept = append(kept, r.Output.Lines[:i]...)
				bad = true
			}
			w.out.notice(fmt.Sprintf("warning: runner record %d: skipped line piece %d of %s, which cannot be decoded (%v)", r.Seq, i+1, l.Stream, err))
			if l.Cont || !w.openLine[l.Stream] {
				continue
			}
			l = protocol.Line{Stream: l.Stream, Millis: l.Millis}
		}
		w.openLine[l.Stream] = l.Cont
		if bad {
			kept = append(kept, l)
		}
	}
	if !bad {
		return r
	}
	out := *r.Output
	out.Lines = kept
	r.Output = &out
	return r
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
	if w.cancelAt.IsZero() {
		w.cancel(ctx, fmt.Sprintf("%v received", sig))
		return nil
	}
	// A second signal leaves at once, but a cancel request still on its way
	// gets a moment to go out (a third signal does not wait for it).
	if w.cancelCh != nil {
		w.cancelAgain = false
		select {
		case r := <-w.cancelCh:
			w.cancelPublished(ctx, r, true)
		case <-w.app.signals:
		case <-time.After(w.app.leaveWait):
		}
	}
	w.leftAtOnce = true
	state := "the cancel request was sent"
	switch {
	case w.cancelCh != nil:
		state = "the cancel request was still being sent and may not have gone out"
	case w.cancelErr != nil:
		state = "the cancel request could not be sent (" + w.cancelErr.Error() + ")"
	}
	return exitcode.Errorf(exitcode.Cancelled, "run %s: left at once on a second %v; %s, the task may still be stopping", w.runID, sig, state)
}

// cancel starts the grace clock and publishes a cancel request.
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
	w.sendCancel(ctx)
}

// sendCancel publishes a cancel request in the background, so that the
// event loop keeps reading signals and records meanwhile; the loop reads the
// outcome from cancelCh. One publish at a time: asked again while one is in
// flight, it sends another once that one is done.
func (w *watch) sendCancel(ctx context.Context) {
	if w.cancelCh != nil {
		w.cancelAgain = true
		return
	}
	ch := make(chan cancelResult, 1)
	w.cancelCh = ch
	req := newRequest(protocol.KindCancel, w.runID, w.app.now(), w.cfg.RequestTTL)
	afterAccept := w.accepted != nil
	pctx, done := context.WithTimeout(context.WithoutCancel(ctx), cancelPublishTimeout)
	go func() {
		defer done()
		ch <- cancelResult{err: publish(pctx, w.c, w.cfg.Topic, req), afterAccept: afterAccept}
	}()
}

// cancelPublished takes the outcome of a background cancel publish.
func (w *watch) cancelPublished(ctx context.Context, r cancelResult, quiet bool) {
	w.cancelCh = nil
	w.cancelErr = r.err
	if r.err == nil && r.afterAccept {
		w.cancelOK = true
	}
	if r.err != nil && !quiet {
		w.out.notice("could not send the cancel request: " + r.err.Error())
	}
	if w.cancelAgain {
		w.cancelAgain = false
		w.sendCancel(ctx)
	}
}

// mayBeRunning reports whether the run's job may still be going (or still
// start) when the trigger stops watching it: true unless the runner's exit
// record arrived, the broker rejected the run, or ECS reported the task
// STOPPED.
func (w *watch) mayBeRunning() bool {
	return !w.exited && !w.rejected && (w.lastTask == nil || w.lastTask.Status != "STOPPED")
}

// settle ends the tail with err. When the trigger gives up on a run that
// may still be going, it sends a cancel (unless one already went out after
// the run was accepted), so that the job does not run on with nobody
// watching after the trigger has reported a failure, and says so in the
// error. It waits for every cancel request in flight, so that the release
// (which deletes the run queue) is never published before a cancel: a
// signal meanwhile leaves at once.
func (w *watch) settle(ctx context.Context, err error) error {
	if w.leftAtOnce {
		return err
	}
	need := w.mayBeRunning()
	sent := false
	for {
		if w.cancelCh == nil {
			if !need || w.cancelOK || sent {
				break
			}
			w.sendCancel(ctx)
			sent = true
		}
		select {
		case r := <-w.cancelCh:
			w.cancelPublished(ctx, r, true)
		case sig := <-w.app.signals:
			w.leftAtOnce = true
			return annotate(err, fmt.Sprintf("; left at once on %v while the cancel request was being sent: it may not have gone out, and the job may run on unattended", sig))
		}
	}
	switch {
	case !sent:
		return err
	case w.cancelErr == nil:
		return annotate(err, "; sent a cancel so it does not run unattended")
	}
	return annotate(err, "; the cancel request could not be sent, so the job may run on unattended: stop it in the target account ("+w.cancelErr.Error()+")")
}

// annotate appends note to err's message, keeping its exit code.
func annotate(err error, note string) error {
	return exitcode.New(exitcode.Code(err), fmt.Errorf("%w%s", err, note))
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
		// settle sends the cancel.
		return exitcode.Errorf(exitcode.Timeout, "run %s was still going after %s, the trigger's time limit: gave up", w.runID, now.Sub(w.published).Round(time.Second))
	}
	if w.seq.waiting() {
		// Output held behind a gap for longer than a late message can
		// take: give up on the gap so that the rest flows.
		ready, missing := w.seq.expire(now.Add(-w.app.gapWait))
		return w.release(ctx, ready, missing)
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
	case t.StopCode == "TaskFailedToStart" || (t.ExitCode == nil && !w.everRunning && w.lastRunner.IsZero()):
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

// heartbeatLimit is how long the runner may stay silent: --missed-heartbeats
// intervals when given; by default autoMissedHeartbeats intervals, but never
// less than minSilence.
func (w *watch) heartbeatLimit() time.Duration {
	iv := 10 * time.Second
	if w.started != nil && w.started.HeartbeatSeconds > 0 {
		iv = time.Duration(w.started.HeartbeatSeconds) * time.Second
	}
	if w.cfg.MissedHeartbeats > 0 {
		return time.Duration(w.cfg.MissedHeartbeats) * iv
	}
	return max(autoMissedHeartbeats*iv, minSilence)
}

// The default silence limit. A runner whose sends fail (SQS throttling, 5xx,
// a dropped connection) retries one request for up to its send timeout
// (DEPLOY_BROKER_SEND_TIMEOUT, 2m by default), the last attempt bounded by
// 30 s, and no heartbeat can overtake that request; a message whose receive
// answer was lost comes back after receiveVisibility. The runner is only
// declared lost once all of that has passed with time to spare, so that
// throttling the runner rides out never ends the run.
const (
	autoMissedHeartbeats = 4
	runnerSendTimeout    = 2 * time.Minute  // internal/runner DefaultSendTimeout
	runnerCallTimeout    = 30 * time.Second // internal/runner's bound on one send call
	minSilence           = runnerSendTimeout + runnerCallTimeout + receiveVisibility + 20*time.Second
)

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
	return w.release(ctx, ready, missing)
}

// release reports the runner records given up on and handles the records
// the sequencer released, in order.
func (w *watch) release(ctx context.Context, ready []protocol.Record, missing [][2]uint64) error {
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
