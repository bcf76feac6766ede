// Package e2etest is shared set-up for tests that run the real binaries
// through the local broker: it builds deploy-trigger and deploy-runner once
// per test process, starts a local broker per test, and runs the trigger.
package e2etest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/faultproxy"
)

const module = "github.com/deploy-broker/deploy-broker"

// Bins are the freshly built binaries.
type Bins struct {
	Dir, Trigger, Runner string
}

// Build compiles deploy-trigger and deploy-runner into a temporary
// directory; call it from TestMain and remove Dir afterwards.
func Build() (Bins, error) {
	dir, err := os.MkdirTemp("", "deploy-broker-bin-")
	if err != nil {
		return Bins{}, err
	}
	b := Bins{Dir: dir, Trigger: filepath.Join(dir, "deploy-trigger"), Runner: filepath.Join(dir, "deploy-runner")}
	for out, pkg := range map[string]string{b.Trigger: module + "/cmd/trigger", b.Runner: module + "/cmd/runner"} {
		if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return Bins{}, fmt.Errorf("building %s: %v\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// Main is a TestMain body: build, run the tests, clean up.
func Main(m *testing.M, bins *Bins) {
	b, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bins = b
	code := m.Run()
	os.RemoveAll(b.Dir)
	os.Exit(code)
}

// StartBroker runs a local broker for one test with the given configuration
// and stops it when the test ends; on failure its log is shown.
func StartBroker(t testing.TB, bins Bins, configPath string, o localbroker.Options) *localbroker.Broker {
	t.Helper()
	o.ConfigPath = configPath
	o.RunnerPath = bins.Runner
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
		// DEPLOY_BROKER_TEST_LOG_DIR keeps every test's broker log, to look
		// at the timing of a slow or flaky scenario after the fact.
		if dir := os.Getenv("DEPLOY_BROKER_TEST_LOG_DIR"); dir != "" {
			if data, err := os.ReadFile(logf.Name()); err == nil {
				name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano())), data, 0o600)
			}
		}
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("broker log (tail):\n%s", Tail(string(log), 40))
		}
	})
	return b
}

// StartBrokerBehindProxy is StartBroker with a fault proxy, started with
// po, between moto and the broker's own clients and runners (o.Endpoint is
// replaced). The trigger reaches the proxy too, through the broker's
// endpoint (b.Env: local mode's account shim in front of the proxy).
func StartBrokerBehindProxy(t testing.TB, bins Bins, configPath string, o localbroker.Options, po faultproxy.Options) (*localbroker.Broker, *faultproxy.Proxy) {
	t.Helper()
	var proxy *faultproxy.Proxy
	o.Endpoint = func(motoURL string) (string, error) {
		p, err := faultproxy.Start(motoURL, po)
		if err != nil {
			return "", err
		}
		proxy = p
		// Registered before StartBroker's own clean-up, so it runs after
		// it: the broker stops before its endpoint goes away (else its
		// shutdown retries against a closed port for tens of seconds).
		t.Cleanup(p.Close)
		return p.URL, nil
	}
	b := StartBroker(t, bins, configPath, o)
	return b, proxy
}

// Result is how a deploy-trigger run ended.
type Result struct {
	Code           int
	Stdout, Stderr string
	Elapsed        time.Duration
}

// Trigger is a deploy-trigger invocation.
type Trigger struct {
	Bins Bins
	// Env is added to a clean environment (PATH, HOME, TMPDIR) after the
	// broker's, so it can override the endpoint.
	Env []string
	// Started is called with the running process (signals, tests of cancel).
	Started func(p *os.Process)
}

// Run runs deploy-trigger with args against b and waits for it to end.
func (tr Trigger) Run(t testing.TB, b *localbroker.Broker, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tr.Bins.Trigger, args...)
	cmd.Env = append(append(CleanEnv(), b.Env()...), tr.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting deploy-trigger: %v", err)
	}
	if tr.Started != nil {
		tr.Started(cmd.Process)
	}
	err := cmd.Wait()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("running deploy-trigger: %v", err)
	}
	return r
}

// CleanEnv is a minimal environment without the user's AWS settings.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name == "PATH" || name == "HOME" || name == "TMPDIR" {
			env = append(env, kv)
		}
	}
	return env
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Diff describes the first difference between two line lists ("" if equal).
func Diff(got, want []string) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("line %d is %q, want %q (got %d lines, want %d)", i+1, got[i], want[i], len(got), len(want))
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d lines, want %d", len(got), len(want))
	}
	return ""
}
