// Package e2e runs the real binaries through the whole local flow:
// deploy-trigger → SNS (moto) → dispatcher handler → ECS RunTask (moto) →
// local agent → deploy-runner → SQS FIFO (moto) → deploy-trigger.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

var bin string // directory holding the freshly built binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-broker-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for name, pkg := range map[string]string{"deploy-trigger": "../cmd/trigger", "deploy-runner": "../cmd/runner"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startBroker runs a local broker for one test.
func startBroker(t *testing.T, o localbroker.Options) *localbroker.Broker {
	t.Helper()
	o.ConfigPath = "testdata/broker.yaml"
	o.RunnerPath = filepath.Join(bin, "deploy-runner")
	if o.TaskLogDir == "" {
		o.TaskLogDir = t.TempDir()
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "broker.log"))
	if err != nil {
		t.Fatal(err)
	}
	o.Log = logf
	b, err := localbroker.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("broker log:\n%s", tail(string(log), 60))
		}
	})
	return b
}

type result struct {
	code           int
	stdout, stderr string
}

// trigger runs deploy-trigger against b and waits for it to end.
func trigger(t *testing.T, b *localbroker.Broker, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "deploy-trigger"), args...)
	cmd.Env = append(cleanEnv(), b.Env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running deploy-trigger: %v", err)
	}
	return r
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name == "PATH" || name == "HOME" || name == "TMPDIR" {
			env = append(env, kv)
		}
	}
	return env
}

var jobLine = regexp.MustCompile(`^line (\d+) (out|err)$`)

// jobLines keeps the lines the job wrote, dropping deploy-trigger's own
// status lines.
func jobLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if jobLine.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func TestRunStreamsEveryLineInOrderAndPassesTheExitCode(t *testing.T) {
	b := startBroker(t, localbroker.Options{})
	r := trigger(t, b, "chatter", "lines=2000", "code=3")

	if r.code != 3 {
		t.Errorf("exit code = %d, want the job's 3\nstderr:\n%s", r.code, tail(r.stderr, 30))
	}
	var wantOut, wantErr []string
	for i := 1; i <= 2000; i++ {
		if i%2 == 1 {
			wantOut = append(wantOut, fmt.Sprintf("line %d out", i))
		} else {
			wantErr = append(wantErr, fmt.Sprintf("line %d err", i))
		}
	}
	// Every stdout line on stdout, once, in order, and nothing else there.
	if got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); !equal(got, wantOut) {
		t.Errorf("stdout: %s", diff(got, wantOut))
	}
	// Every stderr line on stderr, once, in order (deploy-trigger's own
	// status lines also go to stderr and are skipped).
	if got := jobLines(r.stderr); !equal(got, wantErr) {
		t.Errorf("stderr: %s", diff(got, wantErr))
	}
}

func TestUnknownJobIsRejectedPromptlyAndLaunchesNothing(t *testing.T) {
	b := startBroker(t, localbroker.Options{})
	r := trigger(t, b, "no-such-job", "version=1")

	if r.code != exitcode.Rejected {
		t.Errorf("exit code = %d, want %d (rejected)\nstderr:\n%s", r.code, exitcode.Rejected, r.stderr)
	}
	if !strings.Contains(r.stderr, `job "no-such-job" is not in this broker's catalogue`) {
		t.Errorf("stderr does not give the dispatcher's reason:\n%s", r.stderr)
	}
	awsCfg, err := b.Server.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
		out, err := ecs.NewFromConfig(awsCfg).ListTasks(context.Background(), &ecs.ListTasksInput{
			Cluster: aws.String(b.Resources.ClusterARN), DesiredStatus: status})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.TaskArns) != 0 {
			t.Errorf("a rejected request launched tasks: %v", out.TaskArns)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// diff describes the first difference between got and want.
func diff(got, want []string) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("line %d is %q, want %q (got %d lines, want %d)", i+1, got[i], want[i], len(got), len(want))
		}
	}
	return fmt.Sprintf("got %d lines, want %d", len(got), len(want))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
