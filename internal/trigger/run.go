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
	"sync/atomic"
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
	// A closed stdout or stderr (| head, a dead CI log stream) must not kill
	// the process with SIGPIPE and leave the run unwatched: with SIGPIPE
	// caught, the write fails with EPIPE, and the watch stops printing the
	// job's lines but follows the run to its end (watch_output.go).
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)
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
	// watching is set once a run is out (about to be published, or being
	// followed): from then on Ctrl-C belongs to the watch loop, which
	// cancels or detaches, and a prompt (an MFA code asked again when the
	// session expires mid-run) no longer takes signals.
	watching atomic.Bool
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
	return watchSettings{watchTimings: a.watchTimings, now: a.now, signals: a.signals, flush: a.out.Flush, stderr: a.stderr}
}

// flush writes out buffered output.
func (a *app) flush() { _ = a.out.Flush() }

func (a *app) main(ctx context.Context, args []string) error {
	defer a.flush()
	if c, ok := commandFlagsFirst(args); ok {
		if c.own != nil {
			return a.history(ctx, c.Name, args[1:]) // cmd_runs.go, cmd_logs.go
		}
		commandHelp(a.stdout, c) // `deploy-trigger approve --help`
		return nil
	}
	cli, err := parseCLI(args, a.getenv, a.stdout, a.stderr)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return a.fail(nil, exitcode.Errorf(exitcode.Usage, "%s (see deploy-trigger --help)", strings.TrimRight(err.Error(), ".")))
	}
	if kind, runID, ok := decisionKind(cli); ok {
		return a.decide(ctx, cli, kind, runID) // approve.go
	}
	if handled, err := a.command(ctx, cli); handled {
		if err != nil {
			if !errors.As(err, new(*exitcode.Error)) {
				err = exitcode.New(exitcode.Usage, err) // a plain error: the command was misused
			}
			return a.fail(nil, err)
		}
		return nil
	}
	out := a.printer(cli, cli.Output)
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return a.fail(out, exitcode.New(exitcode.Usage, err))
	}
	a.protect(out, cfg)
	now := a.now()
	runID := protocol.NewRunID(now)
	requester := requesterFromEnv(a.getenv, a.hostname)
	req := newRequest(protocol.KindRun, runID, now, cfg.RequestTTL)
	req.Job, req.Params, req.Requester = cfg.Job, cfg.JobParams, requester
	req.IdempotencyKey = cfg.IdempotencyKey
	if err := req.Validate(); err != nil {
		return a.fail(out, exitcode.New(exitcode.Usage, err))
	}
	t := &Target{Job: cfg.Job, Params: cfg.JobParams, Topic: cfg.Topic, Environment: cfg.Env, Source: cfg.Source, Account: cfg.Account,
		AccountAlias: cfg.AccountAlias, RunID: runID, Requester: requester}

	c, err := a.awsClients(ctx, cfg, requester)
	if err != nil {
		return a.fail(out, err)
	}
	out.target(t)

	if cfg.DryRun {
		return a.dryRun(ctx, out, c, cfg, req, dryRunChecks(cfg))
	}
	if cfg.Confirm {
		if err := a.confirmation(ctx, out, cfg, t); err != nil {
			return a.fail(out, err)
		}
	}
	signer, err := preflight(ctx, c, a.now)
	if err != nil {
		return a.fail(out, err)
	}
	a.watching.Store(true)
	if err := publish(ctx, c, cfg.Topic, req); err != nil {
		return a.fail(out, err)
	}
	out.notice(fmt.Sprintf("run %s requested (claimed: %s)", runID, requester))
	w := &watch{set: a.watchSettings(), cfg: cfg, c: c, out: out, runID: runID, expect: cfg.Account, published: a.now(), signer: signer}
	// tail has sent a cancel when it gave up on a run that may still be
	// going, and waited for it: the release comes after it.
	res := w.tail(ctx)
	if w.detached {
		return a.detach(out, w, cfg.Output) // watch_detach.go
	}
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
		p = &resultFilePrinter{printer: p, path: cli.ResultFile, stderr: a.stderr}
	}
	return &redactingPrinter{printer: p} // secret parameters: see protect

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
	// --color: never, always, or auto (colour unless NO_COLOR is set, in
	// the modes that show colours: terminal and github).
	color := cli.Color == "always" || (cli.Color != "never" && a.getenv("NO_COLOR") == "")
	switch mode {
	case "terminal":
		p := newTerminalPrinter(a.stdout, a.stderr, color)
		p.timestamps = cli.Timestamps
		return p
	case "github":
		p := newGithubPrinter(a.stdout, a.stderr, a.getenv("GITHUB_OUTPUT"), a.getenv("GITHUB_STEP_SUMMARY"), a.token())
		p.color, p.timestamps = color, cli.Timestamps
		return p
	case "json":
		return newJSONPrinter(a.stdout)
	default:
		return newPlainPrinter(a.stdout, a.stderr, cli.Color == "always", cli.Timestamps)
	}
}

func (a *app) dryRun(ctx context.Context, out printer, c clients, cfg *Config, req *protocol.Request, checked string) error {
	body, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return a.fail(out, err)
	}
	id, err := callerIdentity(ctx, c)
	if err != nil {
		return a.fail(out, describeAWSError(ctx, c, err, "checking the caller identity (sts:GetCallerIdentity)", "working AWS credentials"))
	}
	if cfg.Catalogue == nil {
		deployed, err := a.checkDeployed(ctx, out, c, cfg) // discovery.go
		if err != nil {
			return a.fail(out, err)
		}
		checked += deployed
	}
	out.dryRun(body, id)
	out.notice("dry run: nothing was published; " + checked)
	return nil
}

func randomToken() string { return strings.ToLower(protocol.NewRunID(time.Now())) }
