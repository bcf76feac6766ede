package trigger

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
