package trigger

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func codeOf(err error) int { return exitcode.Code(err) }

func seqs(rs []protocol.Record) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s/%d ", r.Src, r.Seq)
	}
	return strings.TrimSpace(b.String())
}

func readyOf(rs []protocol.Record, _ [][2]uint64) []protocol.Record { return rs }

func TestSequencer(t *testing.T) {
	s := newSequencer()
	steps := []struct {
		in   protocol.Record
		want string
	}{
		{rec(protocol.SourceRunner, 2), ""},
		{rec(protocol.SourceDispatcher, 1), "dispatcher/1"},
		{rec(protocol.SourceDispatcher, 1), ""},
		{rec(protocol.SourceECS, 3), "ecs/3"},
		{rec(protocol.SourceECS, 2), ""}, // older task state
		{rec(protocol.SourceECS, 3), ""},
		{rec(protocol.SourceRunner, 4), ""},
		{rec(protocol.SourceRunner, 1), "runner/1 runner/2"},
		{rec(protocol.SourceRunner, 2), ""},
		{rec(protocol.SourceRunner, 4), ""},
		{rec(protocol.SourceRunner, 3), "runner/3 runner/4"},
		{rec(protocol.SourceECS, 5), "ecs/5"},
	}
	for i, st := range steps {
		if got := seqs(readyOf(s.add(st.in, t0))); got != st.want {
			t.Fatalf("step %d: add(%s/%d) = %q, want %q", i, st.in.Src, st.in.Seq, got, st.want)
		}
	}
	if s.waiting() {
		t.Error("waiting with no gap")
	}
}

func TestSequencerFlush(t *testing.T) {
	s := newSequencer()
	s.add(rec(protocol.SourceRunner, 1), t0)
	s.add(rec(protocol.SourceRunner, 4), t0)
	s.add(rec(protocol.SourceRunner, 7), t0)
	ready, missing := s.flush()
	if got := seqs(ready); got != "runner/4 runner/7" {
		t.Errorf("ready %q", got)
	}
	if fmt.Sprint(missing) != "[[2 3] [5 6]]" {
		t.Errorf("missing %v", missing)
	}
	if got := seqs(readyOf(s.add(rec(protocol.SourceRunner, 8), t0))); got != "runner/8" {
		t.Errorf("after flush: %q", got)
	}
}

// Any interleaving with duplicates releases 1..n exactly once, in order.
func TestSequencerShuffled(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		n := 1 + r.IntN(50)
		var in []protocol.Record
		for i := 1; i <= n; i++ {
			for d := 0; d <= r.IntN(3); d++ {
				in = append(in, rec(protocol.SourceRunner, uint64(i)))
			}
		}
		r.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		s := newSequencer()
		var out []uint64
		for _, x := range in {
			for _, y := range readyOf(s.add(x, t0)) {
				out = append(out, y.Seq)
			}
		}
		if len(out) != n {
			t.Fatalf("round %d: released %d of %d", round, len(out), n)
		}
		for i, q := range out {
			if q != uint64(i+1) {
				t.Fatalf("round %d: out of order: %v", round, out)
			}
		}
	}
}

// The reviewer's case: a full buffer behind a gap must still take the record
// that fills the gap, and then release everything.
func TestSequencerFullBufferStillTakesTheGap(t *testing.T) {
	s := newSequencer()
	for q := uint64(2); q <= maxPending+1; q++ {
		if rs, m := s.add(rec(protocol.SourceRunner, q), t0); len(rs) != 0 || len(m) != 0 {
			t.Fatalf("seq %d: released %d, gave up on %v", q, len(rs), m)
		}
	}
	rs, m := s.add(rec(protocol.SourceRunner, 1), t0)
	if len(rs) != maxPending+1 || len(m) != 0 || rs[0].Seq != 1 || rs[len(rs)-1].Seq != maxPending+1 {
		t.Fatalf("filling the gap released %d records (missing %v), want %d", len(rs), m, maxPending+1)
	}
	if s.waiting() || s.pendingBytes != 0 {
		t.Errorf("still holding %d records, %d bytes", len(s.pending), s.pendingBytes)
	}
}

// Over the count bound, the oldest gap is given up on rather than new
// records dropped; a record of the given-up range is then a duplicate.
func TestSequencerCountBound(t *testing.T) {
	s := newSequencer()
	s.maxCount = 3
	for _, q := range []uint64{1, 3, 4, 6} {
		s.add(rec(protocol.SourceRunner, q), t0)
	}
	rs, m := s.add(rec(protocol.SourceRunner, 7), t0)
	if got := seqs(rs); got != "runner/3 runner/4" || fmt.Sprint(m) != "[[2 2]]" {
		t.Fatalf("over the bound: released %q, gave up on %v", got, m)
	}
	if got := seqs(readyOf(s.add(rec(protocol.SourceRunner, 2), t0))); got != "" {
		t.Errorf("a record given up on was released late: %q", got)
	}
	if got := seqs(readyOf(s.add(rec(protocol.SourceRunner, 5), t0))); got != "runner/5 runner/6 runner/7" {
		t.Errorf("the second gap did not fill: %q", got)
	}
}

// The byte bound: records of 1 MiB of output each; held records never pass
// the bound by more than one record.
func TestSequencerByteBound(t *testing.T) {
	s := newSequencer()
	s.maxBytes = 5 << 20
	big := func(q uint64) protocol.Record { return output(q, out(strings.Repeat("x", 1<<20))) }
	var released []uint64
	var missing [][2]uint64
	for q := uint64(2); q <= 20; q++ {
		rs, m := s.add(big(q), t0)
		for _, r := range rs {
			released = append(released, r.Seq)
		}
		missing = append(missing, m...)
		if s.pendingBytes > s.maxBytes {
			t.Fatalf("after seq %d: holding %d bytes, over the %d bound", q, s.pendingBytes, s.maxBytes)
		}
	}
	if fmt.Sprint(missing) != "[[1 1]]" || len(released) != 20-1-len(s.pending) || released[0] != 2 {
		t.Fatalf("released %v, gave up on %v, holding %d", released, missing, len(s.pending))
	}
	// The default bound is in bytes too.
	if d := newSequencer(); d.maxBytes != 64<<20 {
		t.Errorf("default byte bound %d", d.maxBytes)
	}
}

// expire gives up on a gap once the record after it has waited gapWait,
// releases what follows, and keeps waiting on later gaps that are younger.
func TestSequencerExpire(t *testing.T) {
	s := newSequencer()
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	s.add(rec(protocol.SourceRunner, 1), at(0))
	s.add(rec(protocol.SourceRunner, 3), at(1))
	s.add(rec(protocol.SourceRunner, 4), at(2))
	s.add(rec(protocol.SourceRunner, 7), at(10))
	if rs, m := s.expire(at(0)); len(rs)+len(m) != 0 {
		t.Fatalf("expired too early: %s %v", seqs(rs), m)
	}
	rs, m := s.expire(at(5)) // seq 3 arrived at 1s, seq 7 at 10s
	if got := seqs(rs); got != "runner/3 runner/4" || fmt.Sprint(m) != "[[2 2]]" {
		t.Fatalf("expire: released %q, gave up on %v", got, m)
	}
	if !s.waiting() {
		t.Fatal("seq 7 should still wait for 5–6")
	}
	if got := seqs(readyOf(s.add(rec(protocol.SourceRunner, 5), at(11)))); got != "runner/5" {
		t.Errorf("late 5: %q", got)
	}
	if rs, m := s.expire(at(9)); len(rs)+len(m) != 0 {
		t.Errorf("the younger gap expired early: %s %v", seqs(rs), m)
	}
	rs, m = s.expire(at(10))
	if got := seqs(rs); got != "runner/7" || fmt.Sprint(m) != "[[6 6]]" {
		t.Errorf("second expire: released %q, gave up on %v", got, m)
	}
	if s.waiting() {
		t.Error("still waiting")
	}
}

// TestSequencerHeldRecordPinsNoMessage: the decoder's lines share their
// message's memory; a record held behind a gap is copied, so that the
// sequencer's bounds (counted in the record's own bytes) bound what it keeps
// alive. A record released at once is not copied.
func TestSequencerHeldRecordPinsNoMessage(t *testing.T) {
	message := strings.Repeat("x", 1<<20) + "line"
	rec := func(seq uint64) protocol.Record {
		return protocol.Record{Type: protocol.TypeOutput, Src: protocol.SourceRunner, Seq: seq, Time: time.Unix(1, 0),
			Output: &protocol.Output{Lines: []protocol.Line{{Stream: protocol.Stdout, Text: message[1<<20:]}}}}
	}
	shares := func(r protocol.Record) bool {
		return unsafe.StringData(r.Output.Lines[0].Text) == unsafe.StringData(message[1<<20:])
	}
	s := newSequencer()
	if ready, _ := s.add(rec(2), time.Unix(2, 0)); len(ready) != 0 {
		t.Fatalf("record 2 released before 1: %s", seqs(ready))
	}
	ready, _ := s.add(rec(1), time.Unix(3, 0))
	if len(ready) != 2 || ready[1].Output.Lines[0].Text != "line" {
		t.Fatalf("released %s", seqs(ready))
	}
	if shares(ready[1]) {
		t.Error("the record held behind the gap still points into its message")
	}
	if !shares(ready[0]) {
		t.Error("the record released at once was copied")
	}
}
