package localbroker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

const usage = `deploy-broker-local runs the whole broker on this machine against the moto
AWS emulator (no AWS account): the broker topic, the real dispatcher handler,
and a local stand-in for Fargate that runs the runner for each task.

Usage:
  deploy-broker-local [flags]                  run in the foreground until Ctrl-C;
                                               writes the environment deploy-trigger needs
  deploy-broker-local [flags] -- TRIGGER-ARGS  start, run deploy-trigger TRIGGER-ARGS against it,
                                               stop, and exit with deploy-trigger's exit code

Examples:
  deploy-broker-local -config examples/broker.yaml -env-file .local/broker.env
  set -a; . .local/broker.env; set +a; deploy-trigger website version=1.4.2
  deploy-broker-local -config examples/broker.yaml -- website version=1.4.2

Needs moto_server on PATH:  pip install "moto[server]"

Flags:
`

// DefaultTaskStartDelay is broker-local's modelled task start: a Fargate
// cold start is 20–60 s. MaxTaskStartDelay bounds the flag.
const (
	DefaultTaskStartDelay = 30 * time.Second
	MaxTaskStartDelay     = 10 * time.Minute
)

// Main is the deploy-broker-local command. environ is its environment
// (os.Environ()), which deploy-trigger with -- TRIGGER-ARGS inherits and the
// runners take their PATH, HOME and locale from; stdin is deploy-trigger's.
func Main(ctx context.Context, args []string, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deploy-broker-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	self, _ := os.Executable()
	binDir := filepath.Dir(self)
	configPath := fs.String("config", "examples/broker.yaml", "broker configuration file")
	runner := fs.String("runner", filepath.Join(binDir, "deploy-runner"), "runner binary started for each task")
	trigger := fs.String("trigger", filepath.Join(binDir, "deploy-trigger"), "deploy-trigger binary (with -- TRIGGER-ARGS)")
	envFile := fs.String("env-file", ".local/broker.env", "write the environment deploy-trigger needs to this file")
	logFile := fs.String("log", ".local/broker.log", "the broker's own JSON log (dispatcher audit lines, agent)")
	taskLogs := fs.String("task-logs", ".local/tasks", "directory for each task's output, the local CloudWatch Logs")
	startDelay := fs.Duration("task-start-delay", DefaultTaskStartDelay, "modelled Fargate cold start of each task (provisioning 40%, image pull 40%, container start 20%); 0 starts runners at once")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *startDelay < 0 || *startDelay > MaxTaskStartDelay {
		fmt.Fprintf(stderr, "deploy-broker-local: -task-start-delay %s: give a duration from 0 to %s (e.g. 30s, like Fargate's; 0 starts runners at once)\n", *startDelay, MaxTaskStartDelay)
		return 2
	}
	logw, err := prepareFiles(*configPath, *envFile, *logFile, *taskLogs)
	if err != nil {
		fmt.Fprintf(stderr, "deploy-broker-local: %v\n", err)
		return 1
	}
	defer logw.Close()

	b, err := Start(ctx, Options{ConfigPath: *configPath, RunnerPath: *runner, Log: logw, TaskLogDir: *taskLogs, Environ: environ,
		TaskStartDelay: *startDelay})
	if err != nil {
		fmt.Fprintf(stderr, "deploy-broker-local: %v\n", err)
		return 1
	}
	defer b.Close()
	if err := b.WriteEnvFile(*envFile); err != nil {
		fmt.Fprintf(stderr, "deploy-broker-local: writing %s: %v\n", *envFile, err)
		return 1
	}

	if fs.NArg() == 0 {
		fmt.Fprintf(stdout, "local broker %q is up: emulator %s, topic %s\n", b.Config.Broker.Name, b.Server.URL, b.TopicARN())
		if b.Identity != nil {
			fmt.Fprintf(stdout, "deploy-trigger signs its requests as %s (a session of trusted principal %s)\n", b.Identity.ARN, b.Identity.From)
		}
		fmt.Fprintf(stdout, "environment for deploy-trigger written to %s; in another terminal:\n", *envFile)
		fmt.Fprintf(stdout, "  set -a; . %s; set +a; deploy-trigger %s ...\n", *envFile, firstJob(b))
		if path, arn, err := b.writeApproverEnv(ctx, *envFile); err != nil {
			fmt.Fprintf(stderr, "deploy-broker-local: approver identity: %v\n", err)
		} else if path != "" {
			fmt.Fprintf(stdout, "a second person for approvals, %s: set -a; . %s; set +a; deploy-trigger approve RUN_ID\n", arn, path)
		}
		fmt.Fprintf(stdout, "broker log: %s   task logs: %s   Ctrl-C stops it\n", *logFile, *taskLogs)
		fmt.Fprintf(stdout, "each task starts after a modelled cold start of %s (-task-start-delay)\n", *startDelay)
		<-ctx.Done()
		return 0
	}

	if *startDelay > 0 {
		fmt.Fprintf(stderr, "deploy-broker-local: each task starts after a modelled Fargate cold start of %s (-task-start-delay; 0 for none)\n", *startDelay)
	}
	// Run deploy-trigger as a child. Ctrl-C reaches it too (same terminal
	// process group): it cancels the run and needs this broker alive to do
	// so, so the broker ignores signals until the trigger has exited.
	held := make(chan os.Signal, 8)
	signal.Notify(held, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(held)
	cmd := exec.Command(*trigger, fs.Args()...)
	cmd.Env = append(slices.Clip(environ), b.Env()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(stderr, "deploy-broker-local: running %s: %v (build it with: go build -o bin/deploy-trigger ./cmd/trigger)\n", *trigger, err)
		return 1
	}
}

func firstJob(b *Broker) string {
	if names := b.Config.JobNames(); len(names) > 0 {
		return names[0]
	}
	return "JOB"
}

// prepareFiles makes the directories of the env file, the broker's log and
// the task logs, and creates the broker's log: the user's alone
// (private.go), since jobs run under uids of their own when root.
func prepareFiles(configPath, envFile, logFile, taskLogs string) (*os.File, error) {
	jobDir, err := filepath.Abs(filepath.Dir(configPath))
	if err != nil {
		return nil, err
	}
	for _, d := range []string{taskLogs, filepath.Dir(envFile), filepath.Dir(logFile)} {
		if err := privateDir(d, jobDir); err != nil {
			return nil, err
		}
	}
	return createPrivate(logFile)
}
