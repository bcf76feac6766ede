package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Result is what happened, for the runner's own exit code and final log line.
type Result struct {
	Exit      protocol.Exit
	Delivered bool  // the exit record reached the queue
	QueueErr  error // why the queue was given up on, when it was
	Requests  int   // successful SendMessageBatch calls
	Messages  int
	BodyBytes int64 // message body bytes sent
	// RawBodyBytes is BodyBytes with every compressed body counted at its
	// uncompressed length.
	RawBodyBytes int64
	Compressed   int // messages sent compressed
	Retries      int
}

// ExitCode is the runner process's exit code for a result: the code every
// reader of the exit record gives the run ([protocol.ExitCode]: the job's
// own, 128+N after signal N, 244 timeout, 245 cancel, 242 could not start);
// 247 whenever the exit record could not be delivered to the queue,
// whatever the job did.
func (r Result) ExitCode() int {
	if !r.Delivered {
		return exitcode.Broker
	}
	return protocol.ExitCode(r.Exit, false)
}

// Run runs the job described by cfg and streams its output to the queue
// through client (nil: local-only from the start). ctx being cancelled is a
// cancel request (SIGTERM from ECS StopTask): the job's group gets SIGTERM,
// then SIGKILL after the grace period. Run returns when the exit record has
// been delivered or given up on.
func Run(ctx context.Context, cfg Config, client BatchSender) Result {
	cfg.setDefaults()
	log := cfg.Log
	start := time.Now()

	in := make(chan item, cfg.QueueDepth)
	ready := make(chan struct{}, 1)
	work := make(chan *request, 1)
	snd := &sender{
		client: client, queueURL: cfg.QueueURL, groupID: cfg.RunID, dedupPrefix: newDedupPrefix(),
		giveUp: cfg.SendTimeout, callTimeout: 30 * time.Second,
		backoffMin: 100 * time.Millisecond, backoffMax: 5 * time.Second,
		log: log, work: work, ready: ready,
	}
	if client == nil {
		snd.localOnly = true
		snd.lastErr = errors.New("no SQS client")
	}
	batIn := in
	if cfg.LogFormat == protocol.LogFormatRecords && cfg.Stdout != nil {
		// The run log (runlog.go) replaces the raw copy of the job's output.
		rl := &runLog{w: cfg.Stdout, runID: cfg.RunID}
		cfg.Stdout, cfg.Stderr = nil, nil
		mid := make(chan item, cfg.QueueDepth)
		go teeRunLog(rl, in, mid)
		batIn = mid
	}
	bat := &batcher{maxRequest: cfg.MaxRequestBytes, maxMessage: cfg.MaxMessageBytes,
		compress: cfg.Compress != CompressOff, compressMin: cfg.CompressMin, maxRaw: cfg.MaxRawMessage,
		heartbeat: cfg.Heartbeat, now: time.Now, log: log, in: batIn, ready: ready, work: work}
	// Sends outlive a cancel: the exit record must still go out.
	sendCtx := context.WithoutCancel(ctx)
	sendDone := make(chan struct{})
	go func() { snd.run(sendCtx); close(sendDone) }()

	// The AWS key patterns apply even when the catalogue names no secrets.
	red := NewRedactor(cfg.Secrets)

	// The job's outputs file (outputs.go).
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	outFile, env, err := newOutputsFile(env, cfg.JobCred)
	if err != nil {
		log.Warn("cannot create the job's outputs file: the job runs without "+protocol.EnvOutput, "err", err.Error())
	}
	// The job's credentials endpoint (creds.go), and nothing of the
	// runner's own identity or settings in the job's environment.
	var extra []string
	if cfg.JobCreds != nil {
		cs, err := startCredsServer(cfg.JobCreds, log)
		if err == nil {
			defer cs.close()
			extra = cs.env()
			err = cs.prefetch(ctx)
		}
		if err != nil {
			// The job still runs (not every job calls AWS), and its log says
			// why its AWS calls fail.
			log.Error("the job's AWS credentials", "role", cfg.JobRoleARN, "err", err.Error())
			c := noticeChunk(credsNoticePrefix, []string{"the job has no AWS credentials: " + err.Error()}, red)
			teeProblems(cfg.Stderr, c)
			in <- item{chunk: c}
		}
	}
	cfg.Env = jobEnvironment(env, extra...)

	exit, started := startJob(ctx, cfg, red, in, log)
	batDone := make(chan struct{})
	go func() { bat.run(started); close(batDone) }()
	x := exit()
	if outFile != nil {
		outs, problems := outFile.collect(red)
		if started != nil {
			x.Outputs = outs
			if len(problems) > 0 {
				for _, p := range problems {
					log.Warn("job output dropped", "problem", p)
				}
				c := problemsChunk(problems, red)
				teeProblems(cfg.Stderr, c)
				in <- item{chunk: c}
			}
		}
	}
	x.DurationMS = time.Since(start).Milliseconds()
	in <- item{exit: &x}
	<-batDone
	<-sendDone

	res := Result{Delivered: snd.finalSent, QueueErr: snd.lastErr, Requests: snd.requests,
		Messages: snd.messages, BodyBytes: snd.bodyBytes, RawBodyBytes: snd.rawBytes, Compressed: snd.gzMsgs,
		Retries: snd.retries}
	res.Exit = x
	res.Exit.Lines, res.Exit.Bytes = bat.lines, bat.bytes
	return res
}

// startJob starts the job; it returns a function that waits for the job and
// its output to finish and gives the exit record, and the started record (nil
// when the job could not start).
func startJob(ctx context.Context, cfg Config, red *Redactor, in chan<- item, log *slog.Logger) (func() protocol.Exit, *protocol.Started) {
	fail := func(msg string) (func() protocol.Exit, *protocol.Started) {
		log.Error("the job could not start", "err", msg)
		return func() protocol.Exit {
			return protocol.Exit{Code: -1, Reason: protocol.ReasonRunnerError, Message: msg}
		}, nil
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Sprintf("creating the stdout pipe: %v", err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fail(fmt.Sprintf("creating the stderr pipe: %v", err))
	}
	cmd := exec.Command(cfg.Args[0], cfg.Args[1:]...)
	cmd.Env = cfg.Env
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = childProcAttr(cfg.JobCred)
	if cmd.Err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return fail(fmt.Sprintf("cannot run %q: %v", cfg.Args[0], cmd.Err))
	}
	startErr := cmd.Start()
	outW.Close()
	errW.Close()
	if startErr != nil {
		outR.Close()
		errR.Close()
		return fail(fmt.Sprintf("cannot start %q: %v", cfg.Args[0], startErr))
	}
	pgid := cmd.Process.Pid
	uid := os.Getuid()
	if cfg.JobCred != nil {
		uid = int(cfg.JobCred.Uid)
	}
	log.Info("job started", "argv0", cfg.Args[0], "pid", pgid, "uid", uid, "run_id", cfg.RunID)
	started := &protocol.Started{Job: cfg.Job, HeartbeatSeconds: int(cfg.Heartbeat / time.Second)}
	if !cfg.Deadline.IsZero() {
		started.DeadlineUnixMilli = cfg.Deadline.UnixMilli()
	}

	readers := []*lineReader{
		{f: outR, stream: protocol.Stdout, tee: cfg.Stdout},
		{f: errR, stream: protocol.Stderr, tee: cfg.Stderr},
	}
	var wg sync.WaitGroup
	for _, r := range readers {
		r.out, r.red, r.teeMasked = in, red, cfg.RedactLocal
		r.readSize, r.maxPiece, r.flushDelay = cfg.ReadSize, cfg.MaxPiece, cfg.FlushDelay
		wg.Add(1)
		go func() { defer wg.Done(); r.run() }()
	}
	readersDone := make(chan struct{})
	go func() { wg.Wait(); close(readersDone) }()

	waitDone := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waitDone) }()

	kill := func(sig syscall.Signal) {
		if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			log.Warn("signalling the job's process group failed", "signal", sig.String(), "err", err.Error())
		}
	}
	return func() protocol.Exit {
		reason, msg := protocol.ReasonCompleted, ""
		var deadline <-chan time.Time
		if !cfg.Deadline.IsZero() {
			t := time.NewTimer(time.Until(cfg.Deadline))
			defer t.Stop()
			deadline = t.C
		}
		terminated := false
		select {
		case <-waitDone:
		case <-ctx.Done():
			reason, msg = protocol.ReasonCancelled, "cancelled: the runner got a stop request (SIGTERM)"
			terminated = true
		case <-deadline:
			reason, msg = protocol.ReasonTimeout, "timeout: the job ran past its deadline "+cfg.Deadline.UTC().Format(time.RFC3339)
			terminated = true
		}
		if terminated {
			log.Warn("stopping the job", "reason", reason, "grace", cfg.Grace.String())
			kill(syscall.SIGTERM)
			grace := time.NewTimer(cfg.Grace)
			select {
			case <-waitDone:
				// Give the rest of the group what is left of the grace period.
				select {
				case <-readersDone:
				case <-grace.C:
				}
			case <-grace.C:
				log.Warn("the job did not stop within the grace period: killing its process group")
			}
			grace.Stop()
			kill(syscall.SIGKILL)
			<-waitDone
		}
		// Background processes may still hold the pipes open.
		select {
		case <-readersDone:
		case <-time.After(cfg.ExitWait):
			log.Warn("the job exited but its output pipes are still open: killing what is left of its process group")
			kill(syscall.SIGKILL)
			select {
			case <-readersDone:
			case <-time.After(500 * time.Millisecond):
				for _, r := range readers {
					r.stop()
				}
				log.Warn("the job's output pipes are still open, or not yet read to the end: taking what they hold, then closing them")
				<-readersDone
			}
		}
		x := protocol.Exit{Reason: reason, Message: msg, Code: -1}
		if st := cmd.ProcessState; st != nil {
			if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				x.Signal = protocol.Signal(ws.Signal())
			} else {
				x.Code = st.ExitCode()
			}
		}
		if reason == protocol.ReasonCompleted {
			if x.Signal != 0 {
				x.Message = fmt.Sprintf("the job was killed by signal %d (%s, %s)", int(x.Signal), x.Signal, x.Signal.Description())
			} else {
				x.Message = fmt.Sprintf("the job exited with code %d", x.Code)
			}
		}
		log.Info("job finished", "reason", x.Reason, "code", x.Code, "signal", x.Signal)
		return x
	}, started
}
