package trigger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// Issue 25: `--env NAME` is enough for everything. The local broker
// publishes its view as the stack does; deploy-trigger, given only an
// environments file naming the topic (no ledger table, log group or
// catalogue file), lists the jobs, checks a dry run against the deployed
// catalogue and reads the history. moto evaluates no IAM: this proves the
// discovery from the topic and what deploy-trigger makes of the view; the
// stack's tests prove the grant.
func TestLocalEnvIsEnough(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte("environments:\n  local:\n    topic_arn: "+b.TopicARN()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := envOnlyCmd(bin, b, envFile, args...)
		var stdout, stderr testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return exitCodeOf(t, cmd.Run()), stdout.String(), stderr.String()
	}

	code, out, errOut := run("jobs", "--env", "local")
	if code != 0 || !strings.Contains(out, "steps — Prints numbered lines") || !strings.Contains(out, "lines=STRING  (pattern [0-9]+; at most 256 characters; required)") || !strings.Contains(out, "sleeper") {
		t.Errorf("jobs --env local: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// The README's `--dry-run website version=bad`: refused as the broker
	// would refuse it, before anything is published.
	code, out, errOut = run("--dry-run", "--env", "local", "steps", "lines=bad")
	if code != 240 || !strings.Contains(errOut+out, `the broker would refuse it: job "steps", as the broker trigger-e2e declares it: parameter "lines" does not match the pattern [0-9]+`) {
		t.Errorf("--dry-run with a bad parameter: exit %d, want 240 and the broker's reason\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("--dry-run", "--env", "local", "stepz", "lines=1")
	if code != 240 || !strings.Contains(errOut+out, `job "stepz" is not in the catalogue the broker trigger-e2e runs (jobs: sleeper, steps, ticker)`) {
		t.Errorf("--dry-run of an unknown job: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("--dry-run", "--env", "local", "steps", "lines=1")
	if code != 0 || !strings.Contains(errOut+out, "it would be accepted (defaults for wait)") {
		t.Errorf("--dry-run of a good request: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// A run, then the history commands with --env alone.
	code, out, errOut = run("--env", "local", "--output", "plain", "steps", "lines=1")
	if code != 3 {
		t.Fatalf("the run: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("runs", "--env", "local", "--output", "json")
	if code != 0 || !strings.Contains(out, `"job":"steps"`) {
		t.Fatalf("runs --env local: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	runID := between(out, `"run_id":"`, `"`)
	code, out, errOut = run("logs", "--env", "local", runID)
	if code != 0 || !strings.Contains(out, "1") {
		t.Errorf("logs --env local %s: exit %d\nstdout:\n%s\nstderr:\n%s", runID, code, out, errOut)
	}
	code, out, errOut = run("show", "--env", "local", "--output", "json", runID)
	if code != 0 || !strings.Contains(out, `"exit_code":3`) || !strings.Contains(out, `"exit":{`) {
		t.Errorf("show --env local %s (the exit record from the run log the view names): exit %d\nstdout:\n%s\nstderr:\n%s", runID, code, out, errOut)
	}
}

// envOnlyCmd is deploy-trigger with the local broker's endpoint and
// credentials and the environments file, and nothing else: no topic, ledger
// table or run log group variable.
func envOnlyCmd(bin string, b *localbroker.Broker, envFile string, args ...string) *exec.Cmd {
	cmd := triggerCmd(bin, b, args...)
	var env []string
	for _, kv := range cmd.Env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "DEPLOY_TRIGGER_TOPIC_ARN", "DEPLOY_TRIGGER_LEDGER_TABLE", "DEPLOY_TRIGGER_RUN_LOG_GROUP":
		default:
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "DEPLOY_TRIGGER_ENVIRONMENTS="+envFile)
	return cmd
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}
