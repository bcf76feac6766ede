package trigger

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

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
		if got := seqs(s.add(st.in)); got != st.want {
			t.Fatalf("step %d: add(%s/%d) = %q, want %q", i, st.in.Src, st.in.Seq, got, st.want)
		}
	}
	if s.waiting() {
		t.Error("waiting with no gap")
	}
}

func TestSequencerFlush(t *testing.T) {
	s := newSequencer()
	s.add(rec(protocol.SourceRunner, 1))
	s.add(rec(protocol.SourceRunner, 4))
	s.add(rec(protocol.SourceRunner, 7))
	ready, missing := s.flush()
	if got := seqs(ready); got != "runner/4 runner/7" {
		t.Errorf("ready %q", got)
	}
	if fmt.Sprint(missing) != "[[2 3] [5 6]]" {
		t.Errorf("missing %v", missing)
	}
	if got := seqs(s.add(rec(protocol.SourceRunner, 8))); got != "runner/8" {
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
			for _, y := range s.add(x) {
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
