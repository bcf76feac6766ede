package trigger

import (
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Queued records pass until the decision; the decision (seq 1) still passes
// after them, and later queued records are dropped.
func TestSequencerQueuedThenDecision(t *testing.T) {
	s := newSequencer()
	now := time.Now()
	q := protocol.Record{Type: protocol.TypeQueued, Src: protocol.SourceDispatcher, Seq: 1764525600000, Time: now,
		Queued: &protocol.Queued{Group: "group:production-db", Concurrency: 1, Position: 1, Holder: "01M8PTK38HAY06XJQ608BEMSKP", HolderRequester: "alice", HolderSince: now}}
	acc := protocol.Record{Type: protocol.TypeAccepted, Src: protocol.SourceDispatcher, Seq: 1, Time: now, Accepted: &protocol.Accepted{}}
	for i, c := range []struct {
		r    protocol.Record
		want int
	}{{q, 1}, {q, 1}, {acc, 1}, {q, 0}, {acc, 0}} {
		if got, _ := s.add(c.r, now); len(got) != c.want {
			t.Errorf("step %d (%s): %d records released, want %d", i, c.r.Type, len(got), c.want)
		}
	}
	line := describeRecord(q)
	for _, want := range []string{"queued: position 1 for production-db (concurrency 1)", "slot held by run 01M8PTK38HAY06XJQ608BEMSKP (alice, since "} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
}

func TestDecisionCommands(t *testing.T) {
	id := "01M8PTK38HAY06XJQ608BEMSKP"
	for _, c := range []struct {
		job    string
		params []string
		kind   protocol.Kind
	}{
		{"approve", []string{id}, protocol.KindApprove},
		{"reject", []string{id}, protocol.KindReject},
		{"approve", []string{"version=1"}, ""}, // a job named approve
		{"website", []string{id}, ""},
		{"approve", nil, ""},
	} {
		kind, runID, ok := decisionKind(&CLI{Job: c.job, Params: c.params})
		if kind != c.kind || ok != (c.kind != "") || (ok && runID != id) {
			t.Errorf("%s %v: %q %q %v", c.job, c.params, kind, runID, ok)
		}
	}
	line := describeRecord(protocol.Record{Type: protocol.TypeQueued, Queued: &protocol.Queued{Approvers: []string{"arn:aws:iam::1:role/a"}}})
	if !strings.Contains(line, "awaiting approval by one of arn:aws:iam::1:role/a") {
		t.Errorf("line %q", line)
	}
}
