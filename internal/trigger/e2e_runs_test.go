package trigger

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// Issue 17. These tests run the real binaries through the local broker.

// A job's outputs reach $GITHUB_OUTPUT (the "outputs" JSON and each by name,
// in the heredoc form) and the result file; the exit code is the job's.
func TestLocalOutputsReachGitHubAndResultFile(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	dir := t.TempDir()
	ghOut, result := filepath.Join(dir, "github_output"), filepath.Join(dir, "result.json")
	cmd := triggerCmd(bin, b, "--result-file", result, "steps", "lines=4")
	cmd.Env = append(cmd.Env, "GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+ghOut)
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if code := exitCodeOf(t, cmd.Run()); code != 3 {
		t.Fatalf("exit code %d, want 3\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(ghOut)
	if err != nil {
		t.Fatal(err)
	}
	got := parseGitHubOutput(t, string(raw))
	if got["image"] != "app:4" || got["notes"] != "first line\nsecond line" || got["exit-code"] != "3" {
		t.Errorf("GITHUB_OUTPUT:\n%s", raw)
	}
	var all map[string]string
	if err := json.Unmarshal([]byte(got["outputs"]), &all); err != nil || all["image"] != "app:4" || all["notes"] != "first line\nsecond line" {
		t.Errorf("outputs = %q (%v)", got["outputs"], err)
	}
	var res struct {
		ExitCode int               `json:"exit_code"`
		Outputs  map[string]string `json:"outputs"`
	}
	rb, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rb, &res); err != nil || res.ExitCode != 3 || res.Outputs["image"] != "app:4" {
		t.Errorf("result file:\n%s (%v)", rb, err)
	}
}

// parseGitHubOutput reads a $GITHUB_OUTPUT file as the runner does.
func parseGitHubOutput(t *testing.T, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		if name, delim, ok := strings.Cut(lines[i], "<<"); ok && !strings.Contains(name, "=") {
			var v []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				v = append(v, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("unterminated heredoc for %s in:\n%s", name, s)
			}
			m[name] = strings.Join(v, "\n")
			continue
		}
		name, v, _ := strings.Cut(lines[i], "=")
		m[name] = v
	}
	return m
}

// runTrigger runs deploy-trigger to its end and returns its exit code and
// output.
func runTrigger(t *testing.T, bin string, b *localbroker.Broker, args ...string) (int, string, string) {
	t.Helper()
	cmd := triggerCmd(bin, b, args...)
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return exitCodeOf(t, cmd.Run()), stdout.String(), stderr.String()
}

// runs and show read the run from the ledger's history index once the
// dispatcher has seen the task stop; filters select it or not.
func TestLocalRunsAndShow(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	code, _, stderr := runTrigger(t, bin, b, "steps", "lines=2")
	if code != 3 {
		t.Fatalf("exit code %d, want 3:\n%s", code, stderr)
	}
	m := runIDRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run id in:\n%s", stderr)
	}
	runID := m[1]
	var run map[string]any
	waitFor(t, func() bool {
		code, out, errOut := runTrigger(t, bin, b, "show", "--output", "json", runID)
		if code != 0 {
			t.Fatalf("show: exit %d\n%s%s", code, out, errOut)
		}
		run = nil
		_ = json.Unmarshal([]byte(out), &run)
		return run["outcome"] != "running"
	})
	if run["run_id"] != runID || run["job"] != "steps" || run["outcome"] != "failed" || run["exit_code"] != float64(3) ||
		!strings.HasPrefix(fmt.Sprint(run["task_arn"]), "arn:aws:ecs:") {
		t.Errorf("show = %v", run)
	}
	if p, _ := run["params"].(map[string]any); p["lines"] != "2" {
		t.Errorf("params = %v", run["params"])
	}

	code, out, errOut := runTrigger(t, bin, b, "runs")
	if code != 0 || !strings.Contains(out, "RUN ID") || !strings.Contains(out, runID) || !strings.Contains(out, "failed (3)") {
		t.Errorf("runs: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runTrigger(t, bin, b, "runs", "-o", "json", "--job", "steps", "--outcome", "failed")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"run_id":"`+runID+`"`) {
		t.Errorf("runs --job steps --outcome failed: exit %d\n%s", code, out)
	}
	for _, filter := range [][]string{{"--job", "sleeper"}, {"--outcome", "succeeded"}, {"--requester", "nobody-like-this"}, {"--since", "2h", "--until", "1h"}} {
		code, out, _ = runTrigger(t, bin, b, append([]string{"runs", "-o", "json"}, filter...)...)
		if code != 0 || out != "" {
			t.Errorf("runs %v: exit %d, want no runs:\n%s", filter, code, out)
		}
	}
	if code, _, errOut := runTrigger(t, bin, b, "show", "01JD0000000000000000000000"); code != 241 || !strings.Contains(errOut, "is not in the run ledger") {
		t.Errorf("show of an unknown run: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runTrigger(t, bin, b, "show", "--ledger-table", "", "not-a-run-id"); code != 240 {
		t.Errorf("show of a bad run id: exit %d\n%s", code, errOut)
	}
}
