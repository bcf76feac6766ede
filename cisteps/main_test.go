package cisteps

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// repoRoot is the repository root, relative to this package.
const repoRoot = ".."

var (
	binDir string // freshly built deploy-trigger and deploy-runner, when asked for

	buildOnce sync.Once
	buildErr  error

	brokerOnce sync.Once
	broker     *localbroker.Broker
	brokerErr  error
	brokerLog  *os.File
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-broker-cisteps-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	if broker != nil {
		broker.Close()
	}
	if brokerLog != nil {
		brokerLog.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds deploy-trigger and deploy-runner once for the package and
// returns the directory that holds them.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		for name, pkg := range map[string]string{"deploy-trigger": "../cmd/trigger", "deploy-runner": "../cmd/runner"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("building %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// localBroker starts one local broker (moto, dispatcher, agent) for the
// package, on testdata/broker.yaml.
func localBroker(t *testing.T) *localbroker.Broker {
	t.Helper()
	bin := binaries(t)
	brokerOnce.Do(func() {
		brokerLog, brokerErr = os.Create(filepath.Join(binDir, "broker.log"))
		if brokerErr != nil {
			return
		}
		broker, brokerErr = localbroker.Start(context.Background(), localbroker.Options{
			ConfigPath: "testdata/broker.yaml",
			RunnerPath: filepath.Join(bin, "deploy-runner"),
			TaskLogDir: filepath.Join(binDir, "tasks"),
			Log:        brokerLog,
		})
	})
	if brokerErr != nil {
		t.Fatalf("starting the local broker: %v", brokerErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(binDir, "broker.log"))
			t.Logf("broker log (tail):\n%s", tail(string(b), 40))
		}
	})
	return broker
}

// baseEnv is a minimal process environment: what a CI runner always has,
// nothing from the developer's AWS set-up.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PATH", "HOME", "TMPDIR", "LANG", "JAVA_HOME":
			env = append(env, kv)
		}
	}
	return env
}

// brokerEnv is the environment deploy-trigger needs for b, without the
// topic (the CI steps pass it themselves).
func brokerEnv(b *localbroker.Broker) []string {
	var env []string
	for _, kv := range b.Env() {
		if !strings.HasPrefix(kv, "DEPLOY_TRIGGER_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor waits until buf holds want, for at most a minute.
func waitFor(t *testing.T, buf *testutil.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %q; output so far:\n%s", want, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitOrKill waits for cmd, killing it when it has not ended within d.
func waitOrKill(t *testing.T, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	ended, err := testutil.WaitOrKill(cmd, d)
	if !ended {
		t.Errorf("the process did not end within %s of the signal", d)
	}
	return err
}
