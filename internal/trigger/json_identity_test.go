package trigger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The documented guarantees of the job's output (docs/TRIGGER.md "Order of
// the output"), without timing: runner records delivered in any order are
// printed in the runner's order; each stream's lines keep their order
// exactly; across the two streams the order is the runner's record order,
// the order it read them in; and in --output json each line has its own
// identity n (1, 2, 3…), while seq, the record, holds lines of both streams
// and so repeats.
func TestOutputOrderAndLineIdentity(t *testing.T) {
	var recs []protocol.Record
	var wantOut, wantErr, wantAll []string
	for seq := uint64(2); seq <= 7; seq++ {
		a, e, b := fmt.Sprintf("o%da", seq), fmt.Sprintf("e%d", seq), fmt.Sprintf("o%db", seq)
		recs = append(recs, output(seq, out(a), errl(e), out(b)))
		wantOut, wantErr, wantAll = append(wantOut, a, b), append(wantErr, e), append(wantAll, a, e, b)
	}
	delivered := []protocol.Record{started(1, 10), recs[3], recs[1], recs[5], recs[0], recs[4], recs[2]} // as SQS may hand them over
	var buf bytes.Buffer
	p := newJSONPrinter(&buf)
	seq := newSequencer()
	now := time.Unix(0, 0)
	for _, r := range delivered {
		ready, missing := seq.add(r, now)
		if len(missing) > 0 {
			t.Fatalf("gave up on %v", missing)
		}
		for _, x := range ready {
			if err := p.record(x); err != nil {
				t.Fatal(err)
			}
		}
	}
	var gotOut, gotErr, gotAll []string
	seqs := map[uint64]int{}
	dec := json.NewDecoder(&buf)
	for n := uint64(1); dec.More(); {
		var l jsonLine
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		if l.Event != "line" {
			continue
		}
		if l.N != n {
			t.Fatalf("line %q has n %d, want %d: n must be 1, 2, 3… in printed order", l.Text, l.N, n)
		}
		n++
		seqs[l.Seq]++
		gotAll = append(gotAll, l.Text)
		if l.Stream == string(protocol.Stdout) {
			gotOut = append(gotOut, l.Text)
		} else {
			gotErr = append(gotErr, l.Text)
		}
	}
	if !slices.Equal(gotOut, wantOut) || !slices.Equal(gotErr, wantErr) || !slices.Equal(gotAll, wantAll) {
		t.Errorf("printed %v (stdout %v, stderr %v), want %v", gotAll, gotOut, gotErr, wantAll)
	}
	if seqs[2] != 3 {
		t.Errorf("record 2's three lines have seq 2 %d times: seq is the record, shared by its lines", seqs[2])
	}
}
