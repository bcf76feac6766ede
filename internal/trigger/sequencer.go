package trigger

import (
	"sort"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// sequencer puts feedback records back in order. SQS may deliver a message
// twice, and after retries records of one source may arrive out of order; the
// sequencer releases each record exactly once:
//
//   - dispatcher records (accepted/rejected, always seq 1) once;
//   - ecs records only when newer than the last one released (seq is the
//     ECS task version, so an older state never overwrites a newer one);
//   - runner records strictly in seq order 1, 2, 3…: a record that arrives
//     early waits until the gap before it fills.
//
// A gap does not hold output back for ever: the record that fills it is
// always taken, the records waiting behind it are bounded in number and in
// bytes (over either bound the oldest gap is given up on), and expire gives
// up on a gap once the record after it has waited long enough that the
// missing one cannot be merely late. Every gap given up on is reported as a
// range of missing seq numbers; a record of that range arriving afterwards is
// dropped like a duplicate.
type sequencer struct {
	dispatcherSeen bool
	lastECS        uint64
	nextRunner     uint64
	pending        map[uint64]pendingRecord
	pendingBytes   int
	oldest         time.Time // no pending record arrived before this

	maxCount int // bounds on the records waiting behind a gap
	maxBytes int
}

type pendingRecord struct {
	rec     protocol.Record
	arrived time.Time
	size    int
}

// Bounds on the runner records held while waiting for a gap to fill. One
// record can hold about 2 MiB of decompressed output, so the count alone
// does not bound memory.
const (
	maxPending      = 100_000
	maxPendingBytes = 64 << 20
)

func newSequencer() *sequencer {
	return &sequencer{nextRunner: 1, pending: map[uint64]pendingRecord{}, maxCount: maxPending, maxBytes: maxPendingBytes}
}

// add takes one record that arrived at now and returns the records now
// ready, in order, and the ranges of runner seq numbers given up on to make
// room (see sequencer).
func (s *sequencer) add(r protocol.Record, now time.Time) (ready []protocol.Record, missing [][2]uint64) {
	switch r.Src {
	case protocol.SourceDispatcher:
		if r.Type == protocol.TypeQueued {
			// A place in a concurrency queue: shown until the decision.
			if s.dispatcherSeen {
				return nil, nil
			}
			return []protocol.Record{r}, nil
		}
		if s.dispatcherSeen {
			return nil, nil
		}
		s.dispatcherSeen = true
		return []protocol.Record{r}, nil
	case protocol.SourceECS:
		if r.Seq <= s.lastECS {
			return nil, nil
		}
		s.lastECS = r.Seq
		return []protocol.Record{r}, nil
	case protocol.SourceRunner:
		switch {
		case r.Seq < s.nextRunner:
			return nil, nil // duplicate of a record already released (or given up on)
		case r.Seq == s.nextRunner:
			// Always taken, however full the buffer: it is what unblocks it.
			s.nextRunner++
			ready = append(ready, r)
			return s.drain(ready, now), nil
		}
		if _, dup := s.pending[r.Seq]; dup {
			return nil, nil
		}
		if len(s.pending) == 0 {
			s.oldest = now
		}
		p := pendingRecord{rec: detached(r), arrived: now, size: recordSize(r)}
		s.pending[r.Seq] = p
		s.pendingBytes += p.size
		for len(s.pending) > s.maxCount || s.pendingBytes > s.maxBytes {
			var m [2]uint64
			ready, m = s.skipGap(ready, now)
			missing = append(missing, m)
		}
		return ready, missing
	}
	return nil, nil
}

// drain releases the pending records that follow on from nextRunner.
func (s *sequencer) drain(ready []protocol.Record, now time.Time) []protocol.Record {
	for {
		p, ok := s.pending[s.nextRunner]
		if !ok {
			break
		}
		s.take(s.nextRunner)
		s.nextRunner++
		ready = append(ready, p.rec)
	}
	return ready
}

func (s *sequencer) take(seq uint64) {
	s.pendingBytes -= s.pending[seq].size
	delete(s.pending, seq)
}

// skipGap gives up on the first gap: it releases the records after it up to
// the next gap and returns the seq range that never came. There must be a
// pending record.
func (s *sequencer) skipGap(ready []protocol.Record, now time.Time) ([]protocol.Record, [2]uint64) {
	first := uint64(0)
	for q := range s.pending {
		if first == 0 || q < first {
			first = q
		}
	}
	m := [2]uint64{s.nextRunner, first - 1}
	s.nextRunner = first
	return s.drain(ready, now), m
}

// waiting reports whether runner records are held back by a gap.
func (s *sequencer) waiting() bool { return len(s.pending) > 0 }

// expire gives up on every gap whose following record arrived at or before
// cutoff, and returns what that releases and the ranges given up on. A
// record that has waited that long means the missing ones are not merely
// late (a message whose receive answer was lost comes back after its
// visibility timeout): they are lost, and the output behind them should flow.
func (s *sequencer) expire(cutoff time.Time) (ready []protocol.Record, missing [][2]uint64) {
	if len(s.pending) == 0 || s.oldest.After(cutoff) {
		return nil, nil
	}
	for _, q := range s.sortedPending() {
		p := s.pending[q]
		if q != s.nextRunner {
			if p.arrived.After(cutoff) {
				break
			}
			missing = append(missing, [2]uint64{s.nextRunner, q - 1})
		}
		s.take(q)
		s.nextRunner = q + 1
		ready = append(ready, p.rec)
	}
	s.oldest = time.Time{}
	for _, p := range s.pending {
		if s.oldest.IsZero() || p.arrived.Before(s.oldest) {
			s.oldest = p.arrived
		}
	}
	return ready, missing
}

// flush gives up on all the gaps: it releases the held records in seq order
// and returns the ranges of seq numbers that never came.
func (s *sequencer) flush() (ready []protocol.Record, missing [][2]uint64) {
	for _, q := range s.sortedPending() {
		if q > s.nextRunner {
			missing = append(missing, [2]uint64{s.nextRunner, q - 1})
		}
		ready = append(ready, s.pending[q].rec)
		s.take(q)
		s.nextRunner = q + 1
	}
	return ready, missing
}

func (s *sequencer) sortedPending() []uint64 {
	seqs := make([]uint64, 0, len(s.pending))
	for q := range s.pending {
		seqs = append(seqs, q)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// recordSize estimates the memory a held record takes: its lines' bytes
// plus a fixed overhead per line and per record.
func recordSize(r protocol.Record) int {
	n := 256
	if r.Output != nil {
		for _, l := range r.Output.Lines {
			n += 64 + len(l.Text) + len(l.B64)
		}
	}
	if r.Exit != nil {
		n += len(r.Exit.Message)
	}
	return n
}

// detached is r with its lines' text copied out of the decoded message:
// the decoder hands out lines that share their message's memory
// (protocol.DecodeMessage), so a small record held behind a gap would keep
// a whole message alive and the bounds above would not bound memory.
func detached(r protocol.Record) protocol.Record {
	if r.Output == nil {
		return r
	}
	out := &protocol.Output{Lines: make([]protocol.Line, len(r.Output.Lines))}
	for i, l := range r.Output.Lines {
		l.Text, l.B64 = strings.Clone(l.Text), strings.Clone(l.B64)
		out.Lines[i] = l
	}
	r.Output = out
	return r
}
