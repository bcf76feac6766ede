package trigger

import (
	"strings"
	"testing"
	"time"

	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// show prints where a run's start time went: each step the ledger knows,
// in time order, as an offset from the request and the time since the step
// before; JSON gives the same steps.
func TestPrintRunStartBreakdown(t *testing.T) {
	str := func(v string) dbtypes.AttributeValue { return &dbtypes.AttributeValueMemberS{Value: v} }
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	stamp := func(ms int) dbtypes.AttributeValue {
		return str(ledger.Stamp(at.Add(time.Duration(ms) * time.Millisecond)))
	}
	item := map[string]dbtypes.AttributeValue{ledger.AttrRunID: str("01J0000000000000000000000A"), ledger.AttrJob: str("website"),
		ledger.AttrStatus: str(string(ledger.Accepted)), ledger.AttrRequestedAt: stamp(0), ledger.AttrCreatedAt: stamp(120),
		ledger.AttrNotifiedAt: stamp(410), ledger.AttrTaskCreatedAt: stamp(520), ledger.AttrPullStartedAt: stamp(12_520),
		ledger.AttrPullStoppedAt: stamp(24_520), ledger.AttrTaskStartedAt: stamp(30_615)}
	var b strings.Builder
	printRun(&b, "text", runFromItem(item))
	want := `start:          from the request at 2026-12-06T05:00:00Z
                +0.41s    accepted
                +0.52s    task created  (0.11s after accepted)
                +12.52s   image pull started  (12.00s after task created)
                +24.52s   image pull stopped  (12.00s after image pull started)
                +30.61s   task started  (6.09s after image pull stopped)
`
	if !strings.Contains(b.String(), want) {
		t.Errorf("show's start breakdown; got:\n%s\nwant it to contain:\n%s", b.String(), want)
	}
	b.Reset()
	printRun(&b, "json", runFromItem(item))
	for _, w := range []string{`"start":{"from":"2026-12-06T05:00:00Z","steps":[{"step":"accepted","at":"2026-12-06T05:00:00.41Z","offset_ms":410}`,
		`{"step":"task_started","at":"2026-12-06T05:00:30.615Z","offset_ms":30615}]}`} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("show -o json lacks %s:\n%s", w, b.String())
		}
	}
}

// A run the ledger knows no task start of (an older dispatcher's, or one
// rejected before any task) prints no breakdown, in text or JSON; a
// rejected run's notification is not an acceptance.
func TestPrintRunWithoutStartBreakdown(t *testing.T) {
	str := func(v string) dbtypes.AttributeValue { return &dbtypes.AttributeValueMemberS{Value: v} }
	at := ledger.Stamp(time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC))
	item := map[string]dbtypes.AttributeValue{ledger.AttrRunID: str("01J0000000000000000000000A"), ledger.AttrJob: str("website"),
		ledger.AttrStatus: str(string(ledger.Stopped)), ledger.AttrRequestedAt: str(at), ledger.AttrNotifiedAt: str(at)}
	for _, mode := range []string{"text", "json"} {
		var b strings.Builder
		printRun(&b, mode, runFromItem(item))
		if strings.Contains(b.String(), "start:") || strings.Contains(b.String(), `"start":`) {
			t.Errorf("%s: a run without task start times shows a breakdown:\n%s", mode, b.String())
		}
	}
	item[ledger.AttrStatus] = str(string(ledger.Rejected))
	item[ledger.AttrTaskCreatedAt] = str(at)
	if s := startOf(ledger.Decode(item)); s == nil || len(s.Steps) != 1 || s.Steps[0].Step != startStepCreated {
		t.Errorf("a rejected run's breakdown: %+v, want only the task's creation", s)
	}
}

// The steps are in time order: accepted, written after RunTask, usually
// comes after the task's creation, and each "after" names the step before.
func TestStartStepsInTimeOrder(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	it := ledger.Item{Status: ledger.Accepted, RequestedAt: at, NotifiedAt: at.Add(900 * time.Millisecond),
		TaskStart: ledger.TaskStart{Created: at.Add(500 * time.Millisecond), Started: at.Add(2 * time.Second)}}
	b := startOf(it)
	var got []string
	for _, s := range b.Steps {
		got = append(got, s.Step)
	}
	if strings.Join(got, " ") != "task_created accepted task_started" {
		t.Errorf("steps %v, want task_created accepted task_started", got)
	}
	var out strings.Builder
	printStart(&out, b)
	if want := "+0.90s    accepted  (0.40s after task created)"; !strings.Contains(out.String(), want) {
		t.Errorf("got:\n%s\nwant a line %q", out.String(), want)
	}
}

// A warm run's breakdown: accepted, and the time the warm runner it was
// given to had started (before the request), not that runner's own
// creation and pull.
func TestWarmRunStartBreakdown(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	it := ledger.Item{Status: ledger.Accepted, RequestedAt: at, NotifiedAt: at.Add(300 * time.Millisecond), WarmSlot: "warm-01M94VJYT0BTCS18ZC334783MF",
		TaskStart: ledger.TaskStart{Created: at.Add(-40 * time.Minute), PullStarted: at.Add(-40 * time.Minute), Started: at.Add(-39 * time.Minute)}}
	b := startOf(it)
	var got []string
	for _, s := range b.Steps {
		got = append(got, s.Step)
	}
	if strings.Join(got, " ") != "warm_runner_started accepted" {
		t.Errorf("steps %v, want warm_runner_started accepted", got)
	}
	var out strings.Builder
	printStart(&out, b)
	if want := "-2340.00s warm runner started (the run was given to it)"; !strings.Contains(out.String(), want) {
		t.Errorf("got:\n%s\nwant a line %q", out.String(), want)
	}
}
