package trigger

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/creack/pty"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// These tests run the real deploy-trigger and deploy-runner binaries through
// the local broker: moto, the real dispatcher handler and the local Fargate
// agent.

var binaries struct {
	once sync.Once
	dir  string
	err  error
}

func buildBinaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries and runs the local broker")
	}
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "trigger-e2e-")
		if binaries.err != nil {
			return
		}
		for name, pkg := range map[string]string{"deploy-trigger": "../../cmd/trigger", "deploy-runner": "../../cmd/runner"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binaries.dir, name), pkg).CombinedOutput()
			if err != nil {
				binaries.err = fmt.Errorf("building %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

func startLocal(t *testing.T) (*localbroker.Broker, string) {
	t.Helper()
	bin := buildBinaries(t)
	var log testutil.SyncBuffer
	b, err := localbroker.Start(context.Background(), localbroker.Options{ConfigPath: "testdata/broker.yaml",
		RunnerPath: filepath.Join(bin, "deploy-runner"), Log: &log, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		if t.Failed() {
			t.Logf("broker log (tail):\n%s", lastLines(log.String(), 40))
		}
	})
	return b, bin
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func triggerCmd(bin string, b *localbroker.Broker, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(bin, "deploy-trigger"), args...)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name == "PATH" || name == "HOME" || name == "TMPDIR" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, b.Env()...)
	return cmd
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("running deploy-trigger: %v", err)
	return -1
}

func tasks(t *testing.T, b *localbroker.Broker, runID string) []ecstypes.Task {
	t.Helper()
	cfg, err := b.Server.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := ecs.NewFromConfig(cfg)
	var arns []string
	for _, st := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
		in := &ecs.ListTasksInput{Cluster: aws.String(b.Resources.ClusterARN), DesiredStatus: st}
		if runID != "" {
			in.StartedBy = aws.String(runID)
		}
		out, err := c.ListTasks(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, out.TaskArns...)
	}
	if len(arns) == 0 {
		return nil
	}
	out, err := c.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: aws.String(b.Resources.ClusterARN), Tasks: arns})
	if err != nil {
		t.Fatal(err)
	}
	return out.Tasks
}

var runIDRE = regexp.MustCompile(`run ([0-9A-Z]{26}) requested`)

// Ctrl-C (SIGINT) sends a cancel; the dispatcher stops the task, the runner
// stops the job and reports; deploy-trigger exits with the cancelled code.
func TestLocalCancelOnSIGINTStopsTheTask(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	cmd := triggerCmd(bin, b, "sleeper")
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, func() bool { return strings.Contains(stdout.String(), "sleeper started") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("deploy-trigger did not end after SIGINT\nstderr:\n%s", stderr.String())
	}
	if code := exitCodeOf(t, err); code != exitcode.Cancelled {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitcode.Cancelled, stdout.String(), stderr.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if !strings.Contains(stderr.String(), "cancelling run") {
		t.Errorf("stderr does not say it is cancelling:\n%s", stderr.String())
	}
	m := runIDRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no run id in stderr:\n%s", stderr.String())
	}
	ts := tasks(t, b, m[1])
	if len(ts) != 1 || aws.ToString(ts[0].DesiredStatus) != "STOPPED" {
		t.Fatalf("tasks of run %s: %d, want one with desired status STOPPED", m[1], len(ts))
	}
}

// An environment that asks for confirmation asks on a terminal; "n" refuses
// and nothing is published.
func TestLocalConfirmationPromptRefusesOnN(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte(fmt.Sprintf("environments:\n  production:\n    topic_arn: %s\n    account_alias: trigger-e2e\n    confirm: true\n", b.TopicARN())), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := triggerCmd(bin, b, "--environments", envFile, "--env", "production", "sleeper")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var screen testutil.SyncBuffer
	go io.Copy(&screen, ptmx)
	waitFor(t, func() bool { return strings.Contains(screen.String(), "Type yes to continue:") })
	if !strings.Contains(screen.String(), "Run job sleeper in account 123456789012 (trigger-e2e) in us-east-1?") {
		t.Errorf("the prompt does not show the target first:\n%s", screen.String())
	}
	if _, err := ptmx.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("deploy-trigger did not end after n:\n%s", screen.String())
	}
	if code := exitCodeOf(t, err); code != exitcode.Safety {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitcode.Safety, screen.String())
	}
	// The last words may still be on their way through the pty after exit.
	waitFor(t, func() bool { return strings.Contains(screen.String(), "not confirmed: nothing was published") })
	time.Sleep(500 * time.Millisecond) // would a request have reached the dispatcher?
	if ts := tasks(t, b, ""); len(ts) != 0 {
		t.Errorf("a declined run launched %d tasks", len(ts))
	}
}

// A reader that closes the pipe (deploy-trigger ticker | head -3) does not
// kill deploy-trigger with SIGPIPE: the failed write cancels the run, the
// task stops, and deploy-trigger exits 245 saying why.
func TestLocalBrokenPipeCancelsTheRun(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	cmd := triggerCmd(bin, b, "--output", "plain", "ticker")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// head -3: read three lines, then close the pipe.
	buf := make([]byte, 0, 256)
	one := make([]byte, 1)
	for n := 0; n < 3; {
		if _, err := r.Read(one); err != nil {
			t.Fatalf("reading the job's output: %v\nstderr:\n%s", err, stderr.String())
		}
		buf = append(buf, one[0])
		if one[0] == '\n' {
			n++
		}
	}
	r.Close()
	if !strings.HasPrefix(string(buf), "tick 1\n") {
		t.Errorf("first lines = %q", buf)
	}
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("deploy-trigger did not end after its output closed\nstderr:\n%s", stderr.String())
	}
	if ee, ok := err.(*exec.ExitError); ok && !ee.Exited() {
		t.Fatalf("deploy-trigger was killed by a signal (%v)\nstderr:\n%s", ee, stderr.String())
	}
	if code := exitCodeOf(t, err); code != exitcode.Cancelled {
		t.Fatalf("exit code %d, want %d\nstderr:\n%s", code, exitcode.Cancelled, stderr.String())
	}
	if !strings.Contains(stderr.String(), "writing the job's output failed") || !strings.Contains(stderr.String(), "cancelling run") {
		t.Errorf("stderr does not say the output failed and the run is cancelled:\n%s", stderr.String())
	}
	m := runIDRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no run id in stderr:\n%s", stderr.String())
	}
	ts := tasks(t, b, m[1])
	if len(ts) != 1 || aws.ToString(ts[0].DesiredStatus) != "STOPPED" {
		t.Fatalf("tasks of run %s: %d, want one with desired status STOPPED", m[1], len(ts))
	}
}

// Ctrl-C at the confirmation prompt aborts at once (248), without waiting
// for Enter, and nothing is published.
func TestLocalConfirmationPromptCtrlCAborts(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte(fmt.Sprintf("environments:\n  production:\n    topic_arn: %s\n    confirm: true\n", b.TopicARN())), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := triggerCmd(bin, b, "--environments", envFile, "--env", "production", "sleeper")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var screen testutil.SyncBuffer
	go io.Copy(&screen, ptmx)
	waitFor(t, func() bool { return strings.Contains(screen.String(), "Type yes to continue:") })
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C: the terminal sends SIGINT
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("deploy-trigger did not end on Ctrl-C at the prompt:\n%s", screen.String())
	}
	if code := exitCodeOf(t, err); code != exitcode.Safety {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitcode.Safety, screen.String())
	}
	waitFor(t, func() bool { return strings.Contains(screen.String(), "at the prompt; nothing was published") })
	time.Sleep(500 * time.Millisecond)
	if ts := tasks(t, b, ""); len(ts) != 0 {
		t.Errorf("an aborted run launched %d tasks", len(ts))
	}
}
