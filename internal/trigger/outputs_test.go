package trigger

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestGitHubJobOutputs(t *testing.T) {
	d := func() string { return "DELIM" }
	got, warnings := githubJobOutputs([]protocol.JobOutput{
		{Name: "image", Value: "app:1"},
		{Name: "outcome", Value: "x"},
		{Name: "evil", Value: "a\nDELIM\nrun-id=forged"},
		{Name: "notes", Value: "1\n2"},
		{Name: "Image", Value: "app:2"},
	}, d)
	want := "image<<DELIM\napp:1\nDELIM\n" +
		"notes<<DELIM\n1\n2\nDELIM\n" +
		"outputs<<DELIM\n{\"Image\":\"app:2\",\"evil\":\"a\\nDELIM\\nrun-id=forged\",\"image\":\"app:1\",\"notes\":\"1\\n2\",\"outcome\":\"x\"}\nDELIM\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if len(warnings) != 3 || !strings.Contains(warnings[0], `"outcome" has the name of a deploy-trigger output`) ||
		!strings.Contains(warnings[1], `"evil" contains the GITHUB_OUTPUT delimiter`) ||
		!strings.Contains(warnings[2], `"Image" has the name of job output "image" but for case`) {
		t.Errorf("warnings = %q", warnings)
	}
	got, _ = githubJobOutputs(nil, d)
	if got != "outputs={}\n" {
		t.Errorf("no outputs: %q", got)
	}
	if d := randomDelimiter(); len(d) < 40 || d == randomDelimiter() {
		t.Errorf("delimiter %q", d)
	}
}

// Issue 24: a job that exits 3 and writes outputs named like deploy-trigger's
// own in another case must not change them, as the Actions runner reads
// $GITHUB_OUTPUT (case-insensitive names, a later write wins).
func TestGitHubOutputsKeepTheirOwnNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "github_output")
	var stdout, stderr strings.Builder
	p := newGithubPrinter(&stdout, &stderr, path, "", "tok")
	p.result(&Result{RunID: "01JABCDEFGHJKMNPQRSTVWXYZ0", Job: "website", Code: 3, Outcome: "failed",
		TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc", RequestedBy: "arn:aws:sts::111122223333:assumed-role/ci/s",
		Outputs: []protocol.JobOutput{
			{Name: "Exit-Code", Value: "0"}, {Name: "Outcome", Value: "succeeded"}, {Name: "Requested-By", Value: "x"},
			{Name: "RUN-ID", Value: "forged"}, {Name: "Task-Arn", Value: "forged"}, {Name: "OUTPUTS", Value: "{}"},
			{Name: "image", Value: "app:1"}, {Name: "IMAGE", Value: "app:2"},
		}})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := parseGitHubOutput(t, string(raw))
	want := map[string]string{"exit-code": "3", "outcome": "failed", "requested-by": "arn:aws:sts::111122223333:assumed-role/ci/s",
		"run-id": "01JABCDEFGHJKMNPQRSTVWXYZ0", "task-arn": "arn:aws:ecs:us-east-1:123456789012:task/broker/abc", "image": "app:1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("output %s = %q, want %q; GITHUB_OUTPUT:\n%s", k, got[k], v, raw)
		}
	}
	var all map[string]string
	if err := json.Unmarshal([]byte(got["outputs"]), &all); err != nil || all["Exit-Code"] != "0" || all["IMAGE"] != "app:2" {
		t.Errorf("outputs = %q (%v): want every job output in the JSON", got["outputs"], err)
	}
	if n := strings.Count(stdout.String(), "::warning title=deploy-trigger::"); n != 7 {
		t.Errorf("%d warnings, want 7 (6 reserved names, 1 duplicate):\n%s", n, stdout.String())
	}
}
