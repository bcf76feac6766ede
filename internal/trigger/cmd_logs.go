package trigger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Logs of past runs and attach (issue 17). Both read the run log the runner
// writes to the run's CloudWatch Logs stream (protocol/runlog.go): the job's
// output exactly as it went to the queue, both streams in order, then the
// exit record. The run queue cannot serve them: SQS reads are destructive
// and the queue belongs to the trigger that started the run. The stream is
// found through the ledger's history index (job and task ARN).
//
//   - logs RUN_ID prints what the log holds; --follow keeps reading until the
//     exit record.
//   - attach RUN_ID prints what was already written, follows, and exits with
//     the job's exit code, as the trigger that started the run would. Ctrl-C
//     detaches (the run goes on) unless --cancel-on-interrupt, which publishes
//     a cancel and follows the run to its end.

type logsCLI struct {
	targetFlags
	LogGroup          string        `name:"log-group" env:"DEPLOY_TRIGGER_RUN_LOG_GROUP" placeholder:"NAME" help:"The broker's run log group (the stack's RunLogGroup output); by default the one the broker's published view names (--env is enough)."`
	Follow            bool          `short:"f" name:"follow" help:"Keep printing until the run ends (logs only; attach always follows)."`
	CancelOnInterrupt bool          `name:"cancel-on-interrupt" help:"attach: Ctrl-C cancels the run (publishes a cancel; needs publish rights) instead of detaching."`
	Color             bool          `name:"color" help:"Keep the job's ANSI colours."`
	Poll              time.Duration `name:"poll" default:"500ms" hidden:"" help:"How often to read the log while following."`
	LostAfter         time.Duration `name:"lost-after" default:"30s" help:"While following a run the ledger says has ended: wait this long after its end (the log may lag) for the exit record, then end with the ledger's outcome (243 when it knows no exit code)."`
	Key               string        `name:"key" placeholder:"KEY" help:"Find the run by the idempotency key it was started with (--idempotency-key), instead of its run id: the newest of your own runs of --job with that key."`
	Job               string        `name:"job" placeholder:"JOB" help:"With --key (required): the job the run is of."`
	KeySince          time.Duration `name:"key-since" default:"24h" help:"With --key: look at runs from this long ago on."`
	ResultFile        string        `name:"result-file" env:"DEPLOY_TRIGGER_RESULT_FILE" placeholder:"FILE" help:"attach: write the run's result (exit code, outcome, outputs…) as JSON to FILE, as a run does."`
	RunID             string        `arg:"" optional:"" name:"run-id" help:"The run id (a ULID)."`
}

type logsAPI interface {
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

func (a *app) runLogs(ctx context.Context, cmd string, args []string) error {
	c := &logsCLI{}
	if err := parseSub(c, "deploy-trigger "+cmd, args, a.getenv, a.stdout, a.stderr); err != nil {
		if errors.Is(err, errHelpShown) {
			return nil
		}
		return a.historyFail(exitcode.Errorf(exitcode.Usage, "%s (see deploy-trigger %s --help)", err, cmd))
	}
	attach := cmd == "attach"
	if (c.RunID == "") == (c.Key == "") {
		return a.historyFail(exitcode.Errorf(exitcode.Usage, "give a run id or --key KEY (one of them)"))
	}
	if c.RunID != "" {
		if err := protocol.ValidateRunID(c.RunID); err != nil {
			return a.historyFail(exitcode.New(exitcode.Usage, err))
		}
	} else if err := protocol.ValidateIdempotencyKey(c.Key); err != nil {
		return a.historyFail(exitcode.New(exitcode.Usage, err))
	} else if c.Job == "" {
		return a.historyFail(exitcode.Errorf(exitcode.Usage, "--key needs --job JOB: a key finds the newest of your own runs of that job"))
	}
	if c.Output == "json" {
		return a.historyFail(exitcode.Errorf(exitcode.Usage, "%s prints the job's output as it ran: --output json is not supported", cmd))
	}
	awsCfg, cfg, err := a.historyAWSLogs(ctx, &c.targetFlags, &c.LogGroup, true) // the log group from the broker's view unless given
	if err != nil {
		return a.historyFail(err)
	}
	f := &logFollower{app: a, cli: c, cfg: cfg, attach: attach, follow: attach || c.Follow,
		h:    historyReader{db: dynamodb.NewFromConfig(awsCfg), table: c.LedgerTable},
		logs: cloudwatchlogs.NewFromConfig(awsCfg), c: newClients(awsCfg),
		atStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
	if c.Key != "" {
		// Only the caller's own runs of the named job (attach_key.go).
		owner, arn, err := callerOwner(ctx, f.c.sts)
		if err != nil {
			return a.historyFail(err)
		}
		now := a.now()
		if c.RunID, err = runByKey(ctx, f.h, c.Job, c.Key, owner, arn, now.Add(-c.KeySince), now); err != nil {
			return a.historyFail(err)
		}
	}
	a.watching.Store(f.follow)
	err = f.run(ctx)
	if attach {
		f.report(err)
	}
	a.flush()
	if err != nil && !isJobExit(err) {
		fmt.Fprintf(a.stderr, "deploy-trigger: %v\n", err)
	}
	if !attach && errors.As(err, new(*detachedError)) {
		return nil // logs --follow only stops reading: nothing went wrong
	}
	return err
}

func isJobExit(err error) bool {
	var je *exitcode.JobExit
	return errors.As(err, &je)
}

type logFollower struct {
	app    *app
	cli    *logsCLI
	cfg    *Config
	attach bool
	follow bool
	h      historyReader
	logs   logsAPI
	c      clients // to publish a cancel (signed, as a run's)

	found     historyRun     // the run, once found
	exit      *protocol.Exit // its exit record, once read
	ledgerEnd bool           // the run ended by the ledger, its log having no exit record
	atStart   map[protocol.Stream]bool
	carry     escapeCarry // an escape sequence split between pieces
	n         uint64      // last run log line printed
	token     *string
	cancelled bool
}

func (f *logFollower) say(format string, a ...any) {
	fmt.Fprintf(f.app.stderr, "deploy-trigger: "+format+"\n", a...)
}

func (f *logFollower) run(ctx context.Context) error {
	runID := f.cli.RunID
	var run historyRun
	var stoppedAt time.Time
	waitingSaid := "" // the waiting status last said
	for {
		r, ok, err := f.h.get(ctx, runID)
		if err != nil {
			return err
		}
		if !ok {
			return notInLedger(runID, f.h.table)
		}
		run = r
		if run.TaskARN != "" || !f.follow || !ledger.Pending(run.Outcome) {
			break
		}
		// No task yet: launching, or waiting for a concurrency slot or an
		// approver. Wait for it to start (or to be refused).
		if run.item.Status.Waiting() && run.Status != waitingSaid {
			waitingSaid = run.Status
			f.say("run %s is %s: waiting for it to start", runID, run.Status)
		}
		if err := f.wait(ctx); err != nil {
			return err
		}
	}
	if run.TaskARN == "" {
		switch {
		case run.item.Status == ledger.Rejected:
			return exitcode.Errorf(exitcode.Rejected, "run %s was rejected: %s", runID, run.Reason)
		case run.item.Status == ledger.Cancelled: // the cancel came before the run request
			return exitcode.Errorf(exitcode.Cancelled, "run %s was cancelled before it started; nothing was launched", runID)
		case ledger.Pending(run.Outcome): // logs without --follow
			f.say("run %s is %s and has logged nothing yet: deploy-trigger logs --follow or attach wait for it", runID, run.Status)
			return nil
		}
		return exitcode.Errorf(exitcode.StartFailed, "run %s has no task (status %s)", runID, run.Status)
	}
	f.found = run
	if f.attach {
		f.say("attached to run %s of job %s (task %s)", runID, run.Job, run.TaskARN)
	}
	stream := protocol.RunLogStream(run.Job, "runner", run.TaskARN)
	for {
		exit, err := f.read(ctx, runID, stream)
		if err != nil {
			return err
		}
		if exit != nil {
			f.exit = exit
			if exit.Signal != 0 && !f.cancelled && !run.item.CancelRequested() {
				// A signalled end is a cancel's when one was asked
				// (protocol.ExitCode): the ledger as it is now, as the
				// cancel may have come after attach found the run.
				if r, ok, err := f.h.get(ctx, runID); err == nil && ok {
					run = r
				}
			}
			if f.attach { // ECS's exit code counts (attach_exit.go)
				if run, exit, err = f.ecsExit(ctx, run, exit); err != nil {
					return err
				}
				f.exit = exit
			}
			return f.finish(run, exit)
		}
		if !f.follow {
			if ledger.Pending(run.Outcome) {
				f.say("run %s is still running: deploy-trigger logs --follow or attach to follow it", runID)
			}
			return nil
		}
		// Still running? The ledger knows when the run ended: once its log,
		// read to the end, has had no exit record for LostAfter after that
		// (the log's last lines may lag the task's end), the ledger's
		// outcome is the run's. A run that ended long ago ends at once.
		if r, ok, err := f.h.get(ctx, runID); err == nil && ok && !ledger.Pending(r.Outcome) {
			ended := r.item.EndedAt
			if ended.IsZero() {
				if stoppedAt.IsZero() {
					stoppedAt = f.app.now()
				}
				ended = stoppedAt
			}
			if f.app.now().Sub(ended) >= f.cli.LostAfter {
				return f.endedWithoutExit(r)
			}
		}
		if err := f.wait(ctx); err != nil {
			return err
		}
	}
}

// wait sleeps one poll interval, or handles Ctrl-C.
func (f *logFollower) wait(ctx context.Context) error {
	f.app.flush()
	t := time.NewTimer(f.cli.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-f.app.signals:
		if !f.attach || !f.cli.CancelOnInterrupt || f.cancelled {
			return exitcode.New(exitcode.Cancelled, &detachedError{runID: f.cli.RunID, env: f.cli.Env}) // said once, by runLogs
		}
		f.cancelled = true
		f.say("cancelling run %s (Ctrl-C again to detach)", f.cli.RunID)
		req := newRequest(protocol.KindCancel, f.cli.RunID, f.app.now(), f.cfg.RequestTTL)
		return publish(ctx, f.c, f.cfg.Topic, req)
	}
}

// read prints the log's new lines and returns the exit record once seen.
func (f *logFollower) read(ctx context.Context, runID, stream string) (*protocol.Exit, error) {
	for {
		in := &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(f.cli.LogGroup), LogStreamName: aws.String(stream),
			StartFromHead: aws.Bool(true), NextToken: f.token}
		out, err := f.logs.GetLogEvents(ctx, in)
		if err != nil {
			var nf *cwltypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil, nil // the task has not written yet
			}
			if isAccessDenied(err) {
				return nil, exitcode.Errorf(exitcode.Broker, "reading the run log needs logs:GetLogEvents on log group %s (granted to the catalogue's viewers by the stack's reader role): %v", f.cli.LogGroup, err)
			}
			return nil, exitcode.Errorf(exitcode.Broker, "reading the run log %s of log group %s: %v", stream, f.cli.LogGroup, err)
		}
		for _, e := range out.Events {
			l, ok, err := protocol.DecodeRunLogLine([]byte(aws.ToString(e.Message)), runID)
			if err != nil {
				return nil, exitcode.Errorf(exitcode.Broker, "run log of run %s: %v", runID, err)
			}
			if !ok || l.N <= f.n {
				continue // the runner's own diagnostics, or a line already printed
			}
			if l.N != f.n+1 {
				return nil, exitcode.Errorf(exitcode.LostRunner, "run log of run %s: line %d follows line %d: lines are missing", runID, l.N, f.n)
			}
			f.n = l.N
			rec := protocol.Record{Type: protocol.TypeOutput, Src: protocol.SourceRunner, Seq: l.N, Time: aws.ToTime(nil)}
			for _, ln := range l.Lines {
				if err := writeLine(ln, rec, f.app.stdout, f.app.stderr, f.atStart, &f.carry, f.cli.Color, false); err != nil {
					return nil, err
				}
			}
			if l.Exit != nil {
				return l.Exit, nil
			}
		}
		f.app.flush()
		if out.NextForwardToken == nil || (f.token != nil && *out.NextForwardToken == *f.token) {
			return nil, nil // at the end of the stream for now
		}
		f.token = out.NextForwardToken
	}
}

// finish ends on the exit record: logs exits 0, attach with the job's code.
func (f *logFollower) finish(run historyRun, x *protocol.Exit) error {
	for _, s := range []protocol.Stream{protocol.Stdout, protocol.Stderr} {
		if !f.atStart[s] { // a last piece without a newline, as the live view ends it
			w := f.app.stdout
			if s == protocol.Stderr {
				w = f.app.stderr
			}
			fmt.Fprintln(w)
		}
	}
	err := exitError(run.Job, f.cli.RunID, x, f.cancelled || run.item.CancelRequested())
	if !f.attach {
		if x.Reason == protocol.ReasonCompleted {
			f.say("job %s exited with code %d in %s", run.Job, protocol.ExitCode(*x, false), roundDuration(time.Duration(x.DurationMS)*time.Millisecond))
		} else {
			f.say("job %s ended: %s", run.Job, x.Message)
		}
		return nil
	}
	if err == nil {
		f.say("job %s succeeded in %s", run.Job, roundDuration(time.Duration(x.DurationMS)*time.Millisecond))
	} else if isJobExit(err) {
		f.say("job %s failed with exit code %d", run.Job, exitcode.Code(err))
	}
	return err
}

// lastExit reads the exit record from the end of a run's log (nil while the
// run is going, or when its log has none).
func lastExit(ctx context.Context, logs logsAPI, group string, r historyRun) (*protocol.Exit, error) {
	out, err := logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(protocol.RunLogStream(r.Job, "runner", r.TaskARN)), StartFromHead: aws.Bool(false), Limit: aws.Int32(50)})
	if err != nil {
		var nf *cwltypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, nil
		}
		if isAccessDenied(err) {
			return nil, exitcode.Errorf(exitcode.Broker, "reading the run log needs logs:GetLogEvents on log group %s (granted to the catalogue's viewers by the stack's reader role): %v", group, err)
		}
		return nil, exitcode.Errorf(exitcode.Broker, "reading the run log of run %s: %v", r.RunID, err)
	}
	for i := len(out.Events) - 1; i >= 0; i-- {
		l, ok, err := protocol.DecodeRunLogLine([]byte(aws.ToString(out.Events[i].Message)), r.RunID)
		if err == nil && ok && l.Exit != nil {
			return l.Exit, nil
		}
	}
	return nil, nil
}

// report hands attach's result to the pipeline as a run does: the result
// file, and $GITHUB_OUTPUT in GitHub Actions (run-id, exit-code, outcome,
// task-arn, outputs).
func (f *logFollower) report(err error) {
	code := exitcode.Code(err)
	r := &Result{RunID: f.cli.RunID, Job: f.found.Job, TaskARN: f.found.TaskARN, Code: code, RequestedBy: f.found.RequestedBy,
		Outcome: outcomeName(code, isJobExit(err) || err == nil && (f.exit != nil || f.ledgerEnd)), Err: err}
	if err != nil && !isJobExit(err) {
		r.Message = err.Error()
	}
	if x := f.exit; x != nil {
		r.Duration = time.Duration(x.DurationMS) * time.Millisecond
		r.Lines, r.Bytes, r.Outputs = x.Lines, x.Bytes, x.Outputs
	}
	if f.cli.ResultFile != "" {
		if werr := writeFileAtomic(f.cli.ResultFile, resultRecord(r)); werr != nil {
			f.say("could not write the result file: %v", werr)
		}
	}
	if path := f.app.getenv("GITHUB_OUTPUT"); path != "" && f.app.getenv("GITHUB_ACTIONS") == "true" {
		out := fmt.Sprintf("run-id=%s\nexit-code=%d\noutcome=%s\ntask-arn=%s\nrequested-by=%s\n", r.RunID, r.Code, r.Outcome, r.TaskARN, r.RequestedBy)
		jobOut, warnings := githubJobOutputs(r.Outputs, randomDelimiter)
		for _, w := range warnings {
			f.say("warning: %s", w)
		}
		if werr := appendFile(path, out+jobOut); werr != nil {
			f.say("could not write GITHUB_OUTPUT: %v", werr)
		}
	}
}
