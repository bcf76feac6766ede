package trigger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Main runs deploy-trigger with the process's signals and returns the exit
// code: cmd/trigger's main is os.Exit(trigger.Main(...)).
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return exitcode.Code(Run(ctx, args, getenv, stdin, stdout, stderr, sigs))
}

// Run is deploy-trigger: parse args and the environment, publish the run,
// tail it, print it. The first value on signals cancels the run; a second one
// leaves at once. The error carries the exit code (package exitcode); Run
// has already shown it to the user.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, signals <-chan os.Signal) error {
	a := newApp(getenv, stdin, stdout, stderr, signals)
	return a.main(ctx, args)
}

// app is one invocation: its world (streams, environment, clock, signals)
// and the knobs tests turn.
type app struct {
	getenv         func(string) string
	stdin          io.Reader
	in             *bufio.Reader
	stdout, stderr io.Writer      // through out: buffered, in order across the two
	out            *orderedOutput // flushed by the tail loop after every event and tick
	signals        <-chan os.Signal
	now            func() time.Time
	hostname       string
	stdinTTY       bool
	stdoutTTY      bool

	watchTimings                       // the tail loop's clocks (watch.go)
	token        func() string         // GitHub stop-commands token
	wrap         func(clients) clients // tests: inject faults into the AWS clients
}

func newApp(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, signals <-chan os.Signal) *app {
	host, _ := os.Hostname()
	if signals == nil {
		signals = make(chan os.Signal)
	}
	out := newOrderedOutput(stdout, stderr)
	return &app{getenv: getenv, stdin: stdin, in: bufio.NewReader(flushingReader{stdin, out}), stdout: out.stdout(), stderr: out.stderr(),
		out: out, signals: signals, now: time.Now, hostname: host, stdinTTY: isTerminal(stdin), stdoutTTY: isTerminal(stdout),
		watchTimings: watchTimings{tick: 200 * time.Millisecond, stopGrace: 2 * time.Second, exitWait: receiveVisibility + 5*time.Second,
			gapWait: receiveVisibility + 5*time.Second, leaveWait: 2 * time.Second, longPoll: 20, retry: time.Second}, token: randomToken}
}

// watchSettings are the settings a watch takes from the app.
func (a *app) watchSettings() watchSettings {
	return watchSettings{watchTimings: a.watchTimings, now: a.now, signals: a.signals, flush: a.out.Flush}
}

// flush writes out buffered output.
func (a *app) flush() { _ = a.out.Flush() }

func (a *app) main(ctx context.Context, args []string) error {
	defer a.flush()
	if len(args) > 0 && historyCommands[args[0]] {
		return a.history(ctx, args[0], args[1:]) // cmd_runs.go
	}
	cli, err := parseCLI(args, a.getenv, a.stdout, a.stderr)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return a.fail(nil, exitcode.Errorf(exitcode.Usage, "%s (see deploy-trigger --help)", strings.TrimRight(err.Error(), ".")))
	}
	out := a.printer(cli, cli.Output)
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return a.fail(out, exitcode.New(exitcode.Usage, err))
	}
	now := a.now()
	runID := protocol.NewRunID(now)
	requester := requesterFromEnv(a.getenv, a.hostname)
	req := newRequest(protocol.KindRun, runID, now, cfg.RequestTTL)
	req.Job, req.Params, req.Requester = cfg.Job, cfg.JobParams, requester
	req.IdempotencyKey = cfg.IdempotencyKey
	if err := req.Validate(); err != nil {
		return a.fail(out, exitcode.New(exitcode.Usage, err))
	}
	t := &Target{Job: cfg.Job, Params: cfg.JobParams, Topic: cfg.Topic, Environment: cfg.Env, Account: cfg.Account,
		AccountAlias: cfg.AccountAlias, RunID: runID, Requester: requester}

	profile := firstNonEmpty(cfg.Profile, a.getenv("AWS_PROFILE"), "default")
	awsCfg, err := loadAWS(ctx, cfg, a.getenv, requester, mfaPrompter(a.in, a.stdinTTY, a.stderr, profile))
	if err != nil {
		return a.fail(out, exitcode.New(exitcode.Usage, err))
	}
	c := newClients(awsCfg)
	if a.wrap != nil {
		c = a.wrap(c)
	}
	out.target(t)

	if cfg.DryRun {
		return a.dryRun(ctx, out, c, req)
	}
	if cfg.Confirm && !cfg.Yes && a.stdinTTY {
		if err := a.confirm(t); err != nil {
			return a.fail(out, err)
		}
	}
	if err := publish(ctx, c, cfg.Topic, req); err != nil {
		return a.fail(out, err)
	}
	out.notice(fmt.Sprintf("run %s requested by %s", runID, requester))
	w := &watch{set: a.watchSettings(), cfg: cfg, c: c, out: out, runID: runID, expect: cfg.Account, published: a.now()}
	// tail has sent a cancel when it gave up on a run that may still be
	// going, and waited for it: the release comes after it.
	res := w.tail(ctx)
	if !w.leftAtOnce {
		rctx, done := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		if err := publish(rctx, c, cfg.Topic, newRequest(protocol.KindRelease, runID, a.now(), cfg.RequestTTL)); err != nil {
			out.notice("could not release the run queue (the broker's sweep will): " + err.Error())
		}
		done()
	}
	out.result(res)
	return res.Err
}

// fail reports an error that ended the run before tailing, and returns it.
func (a *app) fail(out printer, err error) error {
	if out == nil {
		out = newPlainPrinter(a.stdout, a.stderr, false, false)
	}
	code := exitcode.Code(err)
	out.result(&Result{Code: code, Outcome: outcomeName(code, false), Message: err.Error(), Err: err})
	return err
}

// printer picks the output mode, and adds the result file when asked.
func (a *app) printer(cli *CLI, mode string) printer {
	p := a.modePrinter(cli, mode)
	if cli.ResultFile != "" {
		return &resultFilePrinter{printer: p, path: cli.ResultFile, stderr: a.stderr}
	}
	return p
}

func (a *app) modePrinter(cli *CLI, mode string) printer {
	if mode == "auto" || mode == "" {
		switch {
		case a.getenv("GITHUB_ACTIONS") == "true":
			mode = "github"
		case a.stdoutTTY && a.getenv("TERM") != "dumb":
			mode = "terminal"
		default:
			mode = "plain"
		}
	}
	switch mode {
	case "terminal":
		return newTerminalPrinter(a.stdout, a.stderr, a.getenv("NO_COLOR") == "")
	case "github":
		return newGithubPrinter(a.stdout, a.stderr, a.getenv("GITHUB_OUTPUT"), a.getenv("GITHUB_STEP_SUMMARY"), a.token())
	case "json":
		return newJSONPrinter(a.stdout)
	default:
		return newPlainPrinter(a.stdout, a.stderr, cli.Color, cli.Timestamps)
	}
}

func (a *app) dryRun(ctx context.Context, out printer, c clients, req *protocol.Request) error {
	body, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return a.fail(out, err)
	}
	id, err := callerIdentity(ctx, c)
	if err != nil {
		return a.fail(out, describeAWSError(ctx, c, err, "checking the caller identity (sts:GetCallerIdentity)", "working AWS credentials"))
	}
	out.dryRun(body, id)
	out.notice("dry run: nothing was published")
	return nil
}

// confirm asks on the terminal whether to go ahead.
func (a *app) confirm(t *Target) error {
	fmt.Fprintf(a.stderr, "Run job %s in %s? Type yes to continue: ", t.Job, t.where())
	line, err := a.in.ReadString('\n')
	if err != nil && line == "" {
		return exitcode.Errorf(exitcode.Safety, "no confirmation: stdin closed before an answer; nothing was published")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return exitcode.Errorf(exitcode.Safety, "not confirmed: nothing was published (pass --yes to skip the question)")
}

func randomToken() string { return strings.ToLower(protocol.NewRunID(time.Now())) }
