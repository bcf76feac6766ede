package trigger

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// watch is the state of one run being tailed: what has been heard from the
// dispatcher, ECS and the runner, and the clocks that end the wait.
//
// This file has the tail loop; the rest of the watch is split by noun:
// watch_record.go handles the records in order, watch_deadline.go the
// clocks, watch_cancel.go cancelling, and watch_outcome.go the result.
type watch struct {
	set    watchSettings
	cfg    *Config
	c      clients
	out    printer
	runID  string
	seq    *sequencer
	expect string // the account the run must land in
	signer string // the ARN the credentials belong to, when STS said (preflight)

	published    time.Time
	queueURL     string
	lastWaitErr  error
	heardAny     bool
	waitSaid     bool // said what it waits for when the broker was silent (sayWhatItWaitsFor)
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
	outputErr   error             // writing the output failed: the job's lines are no longer printed, the run goes on

	// --detach (watch_detach.go): the broker took the run; leave it going.
	waiting, awaitingApproval, detached bool
}

// watchSettings are what a watch takes from the trigger around it: its
// clock and signals, the output it flushes after every event and tick, and
// its timings.
type watchSettings struct {
	watchTimings
	now     func() time.Time
	signals <-chan os.Signal
	flush   func() error // writes out the buffered output
	stderr  io.Writer    // the trigger's own stderr (says that the output closed)
}

// watchTimings are the watch's clocks and pauses; tests shorten them.
type watchTimings struct {
	tick      time.Duration // how often clocks are checked
	stopGrace time.Duration // wait for records already on their way after ECS says STOPPED
	exitWait  time.Duration // wait for the exit record of a runner that ended with a code (see stopDeadline)
	gapWait   time.Duration // give up on missing runner records once the record after them has waited this long
	leaveWait time.Duration // on a second signal, how long a cancel request still being sent may take
	longPoll  int32         // SQS long-poll seconds
	retry     time.Duration // pause between retries while the queue or its policy is not there yet
}

// tail follows the run until it ends and returns its result.
func (w *watch) tail(ctx context.Context) *Result {
	w.seq = newSequencer()
	w.openLine = map[protocol.Stream]bool{}
	w.res = &Result{RunID: w.runID, Job: w.cfg.Job, Region: w.cfg.Topic.Region, Account: w.expect, AccountAlias: w.cfg.AccountAlias}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	events := make(chan rxEvent)
	rx := &receiver{sqs: w.c.sqs, view: w.c.view, viewTable: viewTableARN(w.cfg.Topic), runID: w.runID,
		queueName: protocol.QueueName(w.cfg.Topic.Name, w.runID), owner: w.cfg.Topic.Account,
		wait: w.set.longPoll, retry: w.set.retry, now: w.set.now}
	go rx.run(rctx, events)
	ticker := time.NewTicker(w.set.tick)
	defer ticker.Stop()
	for {
		var err error
		select {
		case ev := <-events:
			err = w.onEvent(ctx, ev)
			if errors.Is(err, errDetached) { // --detach: watch_detach.go
				w.detached = true
				_ = w.set.flush()
				return w.res
			}
		case sig := <-w.set.signals:
			err = w.onSignal(ctx, sig)
		case r := <-w.cancelCh:
			w.cancelPublished(ctx, r, false)
		case <-ticker.C:
			err = w.onTick(ctx)
		case <-ctx.Done():
			err = exitcode.Errorf(exitcode.Cancelled, "run %s: interrupted (%v)", w.runID, ctx.Err())
		}
		if ferr := w.set.flush(); ferr != nil {
			w.outputFailed(ctx, ferr)
		}
		if err != nil {
			stop()
			return w.finish(w.settle(ctx, err))
		}
	}
}

func (w *watch) onEvent(ctx context.Context, ev rxEvent) error {
	switch {
	case ev.fatal != nil:
		return describeAWSError(ctx, w.c, ev.fatal, "reading run queue "+protocol.QueueName(w.cfg.Topic.Name, w.runID),
			"sqs:ReceiveMessage and sqs:DeleteMessage on the run queue (granted by the queue's policy)")
	case ev.foreign != nil:
		return exitcode.Errorf(exitcode.Safety, "run %s: stopped for safety: %v", w.runID, ev.foreign)
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
				w.lastRunner = w.set.now()
			}
			ready, missing := w.seq.add(r, w.set.now())
			if err := w.release(ctx, ready, missing); err != nil {
				return err
			}
		}
	}
	return nil
}
