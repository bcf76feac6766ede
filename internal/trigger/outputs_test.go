package trigger

import (
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
	}, d)
	want := "outputs<<DELIM\n{\"evil\":\"a\\nDELIM\\nrun-id=forged\",\"image\":\"app:1\",\"notes\":\"1\\n2\",\"outcome\":\"x\"}\nDELIM\n" +
		"image<<DELIM\napp:1\nDELIM\n" +
		"notes<<DELIM\n1\n2\nDELIM\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], `"outcome" has the name of a deploy-trigger output`) ||
		!strings.Contains(warnings[1], `"evil" contains the GITHUB_OUTPUT delimiter`) {
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
