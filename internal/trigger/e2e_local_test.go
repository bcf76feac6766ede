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
	return startLocalWith(t, "testdata/broker.yaml")
}

// startLocalWith starts a local broker of the catalogue config, with the
// binaries it needs; the broker's log is shown when the test fails.
func startLocalWith(t *testing.T, config string) (*localbroker.Broker, string) {
	t.Helper()
	bin := buildBinaries(t)
	var log testutil.SyncBuffer
	b, err := localbroker.Start(context.Background(), localbroker.Options{ConfigPath: config,
		RunnerPath: filepath.Join(bin, "deploy-runner"), Log: &log, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		if t.Failed() {
			t.Logf("broker log (tail):\n%s", lastLines(log.String(), 60))
		}
	})
	return b, bin
}

// gateFile is a file for the steps job to wait for (wait=FILE), not yet
// created. Run as root, local mode runs the job under a uid of its own, so
// the file is in a directory other users may enter (t.TempDir's are not).
func gateFile(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "steps-gate-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "go")
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

// onTerminal starts cmd on a new pseudo-terminal, closed when the test
// ends, and returns the terminal and a copy of all cmd writes to it.
func onTerminal(t *testing.T, cmd *exec.Cmd) (*os.File, *testutil.SyncBuffer) {
	t.Helper()
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close() })
	screen := &testutil.SyncBuffer{}
	go io.Copy(screen, ptmx)
	return ptmx, screen
}

// waitExit waits for cmd, started, to end and returns what Wait returns.
// If it has not ended within d, it kills cmd and fails the test, saying
// after what it should have ended and showing out.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, after string, out fmt.Stringer) error {
	t.Helper()
	ended, err := testutil.WaitOrKill(cmd, d)
	if !ended {
		t.Fatalf("deploy-trigger did not end %s within %s; its output:\n%s", after, d, out.String())
	}
	return err
}

// startConfirmation runs deploy-trigger sleeper on a terminal in an
// environment that asks for confirmation (confirm: true), and waits for the
// question.
func startConfirmation(t *testing.T) (*localbroker.Broker, *exec.Cmd, *os.File, *testutil.SyncBuffer) {
	t.Helper()
	b, bin := startLocal(t)
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte(fmt.Sprintf("environments:\n  production:\n    topic_arn: %s\n    account_alias: trigger-e2e\n    confirm: true\n", b.TopicARN())), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := triggerCmd(bin, b, "--environments", envFile, "--env", "production", "sleeper")
	ptmx, screen := onTerminal(t, cmd)
	waitFor(t, func() bool { return strings.Contains(screen.String(), "Type yes to continue:") })
	return b, cmd, ptmx, screen
}

// wantNothingRun checks that deploy-trigger, ended with err, stopped for
// safety (248) saying said on the terminal, and that no task started.
func wantNothingRun(t *testing.T, b *localbroker.Broker, err error, screen *testutil.SyncBuffer, said string) {
	t.Helper()
	if code := exitCodeOf(t, err); code != exitcode.Safety {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitcode.Safety, screen.String())
	}
	// The last words may still be on their way through the pty after exit.
	waitFor(t, func() bool { return strings.Contains(screen.String(), said) })
	time.Sleep(500 * time.Millisecond) // would a request have reached the dispatcher?
	if ts := tasks(t, b, ""); len(ts) != 0 {
		t.Errorf("a run stopped at the prompt launched %d tasks", len(ts))
	}
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

// wantTaskStopped checks that stderr names the run it requested and that
// the run's one task was stopped.
func wantTaskStopped(t *testing.T, b *localbroker.Broker, stderr string) {
	t.Helper()
	m := runIDRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run id in stderr:\n%s", stderr)
	}
	ts := tasks(t, b, m[1])
	if len(ts) != 1 || aws.ToString(ts[0].DesiredStatus) != "STOPPED" {
		t.Fatalf("tasks of run %s: %d, want one with desired status STOPPED", m[1], len(ts))
	}
}

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
	waitFor(t, func() bool { return strings.Contains(stdout.String(), "sleeper started") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := waitExit(t, cmd, 60*time.Second, "after SIGINT", &stderr)
	if code := exitCodeOf(t, err); code != exitcode.Cancelled {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitcode.Cancelled, stdout.String(), stderr.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if !strings.Contains(stderr.String(), "cancelling run") {
		t.Errorf("stderr does not say it is cancelling:\n%s", stderr.String())
	}
	wantTaskStopped(t, b, stderr.String())
}

// An environment that asks for confirmation asks on a terminal; "n" refuses
// and nothing is published.
func TestLocalConfirmationPromptRefusesOnN(t *testing.T) {
	t.Parallel()
	b, cmd, ptmx, screen := startConfirmation(t)
	if !strings.Contains(screen.String(), "Run job sleeper in account 123456789012 (trigger-e2e) in us-east-1?") {
		t.Errorf("the prompt does not show the target first:\n%s", screen.String())
	}
	if _, err := ptmx.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	err := waitExit(t, cmd, 20*time.Second, "after n", screen)
	wantNothingRun(t, b, err, screen, "not confirmed: nothing was published")
}

// A reader that goes away (deploy-trigger steps | head -0, a tee that
// died) neither kills deploy-trigger with SIGPIPE nor cuts the deploy in
// half: the job's lines stop, stderr says once that the run goes on and how
// to follow it, and deploy-trigger waits for the job and exits with its
// code (3). The job waits halfway until the test lets it go on, which it
// does only once deploy-trigger has said the output closed: so the run was
// surely still going when the write failed.
func TestLocalClosedOutputLetsTheRunFinish(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	goFile := gateFile(t)
	cmd := triggerCmd(bin, b, "--output", "plain", "steps", "lines=40", "wait="+goFile)
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
	r.Close() // the reader is gone before the job's first line
	for deadline := time.Now().Add(90 * time.Second); !strings.Contains(stderr.String(), "the output closed"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) || strings.Contains(stderr.String(), "deploy-trigger: error:") {
			cmd.Process.Kill()
			t.Fatalf("deploy-trigger did not say the output closed:\n%s", stderr.String())
		}
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = waitExit(t, cmd, 90*time.Second, "after its output closed", &stderr)
	if ee, ok := err.(*exec.ExitError); ok && !ee.Exited() {
		t.Fatalf("deploy-trigger was killed by a signal (%v)\nstderr:\n%s", ee, stderr.String())
	}
	if code := exitCodeOf(t, err); code != 3 {
		t.Fatalf("exit code %d, want the job's 3\nstderr:\n%s", code, stderr.String())
	}
	m := runIDRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no run id in stderr:\n%s", stderr.String())
	}
	if n := strings.Count(stderr.String(), "the output closed"); n != 1 || !strings.Contains(stderr.String(), "goes on") ||
		!strings.Contains(stderr.String(), "deploy-trigger logs --follow "+m[1]) {
		t.Errorf("stderr does not say once that the run goes on and how to follow it:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "cancelling run") || strings.Contains(stderr.String(), "step 40 err") {
		t.Errorf("the run was cancelled, or job lines were printed after the output closed:\n%s", stderr.String())
	}
}

// Ctrl-C at the confirmation prompt aborts at once (248), without waiting
// for Enter, and nothing is published.
func TestLocalConfirmationPromptCtrlCAborts(t *testing.T) {
	t.Parallel()
	b, cmd, ptmx, screen := startConfirmation(t)
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C: the terminal sends SIGINT
		t.Fatal(err)
	}
	err := waitExit(t, cmd, 20*time.Second, "on Ctrl-C at the prompt", screen)
	wantNothingRun(t, b, err, screen, "at the prompt; nothing was published")
}
