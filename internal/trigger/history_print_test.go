package trigger

import (
	"bytes"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// show lists parameters and outputs sorted by name, the label on the first
// row only, each value on one line.
func TestPrintRunParametersAndOutputs(t *testing.T) {
	var b strings.Builder
	printRun(&b, "text", historyRun{RunID: "01J0000000000000000000000A", Job: "website", Outcome: "succeeded",
		Params:  map[string]string{"version": "1.4.2", "region": "eu-west-1", "note": "two\nlines"},
		Outputs: map[string]string{"url": "https://example.com", "image": "sha256:abc"}})
	want := `run:            01J0000000000000000000000A
job:            website
outcome:        succeeded
parameters:     note=two lines
                region=eu-west-1
                version=1.4.2
outputs:        image=sha256:abc
                url=https://example.com
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	printRun(&b, "text", historyRun{RunID: "01J0000000000000000000000A", Job: "website", Outcome: "running"})
	if got := b.String(); strings.Contains(got, "parameters") || strings.Contains(got, "outputs") {
		t.Errorf("a run without parameters or outputs shows their labels:\n%s", got)
	}
}

// runs --outcome's help names every outcome the ledger gives, from
// ledger.Outcomes (it used to lack awaiting-approval).
func TestRunsOutcomeHelpListsEveryOutcome(t *testing.T) {
	var out bytes.Buffer
	if err := parseSub(&runsCLI{}, "deploy-trigger runs", []string{"--help"}, func(string) string { return "" }, &out, &out); err != errHelpShown {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, o := range ledger.Outcomes() {
		if !strings.Contains(help, " "+o+",") && !strings.Contains(help, " "+o+".") {
			t.Errorf("runs --help does not list outcome %s:\n%s", o, out.String())
		}
	}
}
