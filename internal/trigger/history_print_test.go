package trigger

import (
	"bytes"
	"strings"
	"testing"
	"time"

	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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

// The ledger item's creation is when the broker took the request, and
// show says so: it was labelled "started", which a run that waited for
// approval or a task start had not.
func TestPrintRunLabelsTheClaimReceived(t *testing.T) {
	var b strings.Builder
	printRun(&b, "text", historyRun{RunID: "01J0000000000000000000000A", Job: "website", Outcome: "succeeded",
		RequestedAt: "2026-12-06T05:00:00Z", CreatedAt: "2026-12-06T05:00:00.4Z"})
	if got := b.String(); !strings.Contains(got, "received:       2026-12-06T05:00:00.4Z\n") || strings.Contains(got, "started:") {
		t.Errorf("got:\n%s", got)
	}
}

// show says who approved (or rejected) a run and when: it did not, though
// the ledger holds it (approval, approval_by, approval_at).
func TestPrintRunApproval(t *testing.T) {
	str := func(v string) dbtypes.AttributeValue { return &dbtypes.AttributeValueMemberS{Value: v} }
	item := map[string]dbtypes.AttributeValue{ledger.AttrRunID: str("01J0000000000000000000000A"), ledger.AttrJob: str("migrate"),
		ledger.AttrApproval: str(ledger.ApprovalApproved), ledger.AttrApprovalBy: str("arn:aws:sts::111111111111:assumed-role/release-manager/ann"),
		ledger.AttrApprovalAt: str(ledger.Stamp(time.Date(2026, 12, 6, 3, 10, 52, 0, time.UTC)))}
	var b strings.Builder
	printRun(&b, "text", runFromItem(item))
	if want := "approved by:    arn:aws:sts::111111111111:assumed-role/release-manager/ann at 2026-12-06T03:10:52Z\n"; !strings.Contains(b.String(), want) {
		t.Errorf("show does not say %q:\n%s", want, b.String())
	}
	b.Reset()
	printRun(&b, "json", runFromItem(item))
	if want := `"approval":"approved","approval_by":"arn:aws:sts::111111111111:assumed-role/release-manager/ann","approval_at":"2026-12-06T03:10:52Z"`; !strings.Contains(b.String(), want) {
		t.Errorf("show -o json lacks %s:\n%s", want, b.String())
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
