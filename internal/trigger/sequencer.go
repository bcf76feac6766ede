package trigger

import (
	"sort"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// sequencer puts feedback records back in order. SQS may deliver a message
// twice, and after retries records of one source may arrive out of order; the
// sequencer releases each record exactly once:
//
//   - dispatcher records (accepted/rejected, always seq 1) once;
//   - ecs records only when newer than the last one released (seq is the
//     ECS task version, so an older state never overwrites a newer one);
//   - runner records strictly in seq order 1, 2, 3… with no gaps: a record
//     that arrives early waits until the gap before it fills.
type sequencer struct {
	dispatcherSeen bool
	lastECS        uint64
	nextRunner     uint64
	pending        map[uint64]protocol.Record
}

func newSequencer() *sequencer {
	return &sequencer{nextRunner: 1, pending: map[uint64]protocol.Record{}}
}

// maxPending bounds the runner records held while waiting for a gap to fill.
const maxPending = 100_000

// add takes one record and returns the records now ready, in order.
func (s *sequencer) add(r protocol.Record) []protocol.Record {
	switch r.Src {
	case protocol.SourceDispatcher:
		if s.dispatcherSeen {
			return nil
		}
		s.dispatcherSeen = true
		return []protocol.Record{r}
	case protocol.SourceECS:
		if r.Seq <= s.lastECS {
			return nil
		}
		s.lastECS = r.Seq
		return []protocol.Record{r}
	case protocol.SourceRunner:
		if r.Seq < s.nextRunner {
			return nil // duplicate of a record already released
		}
		if _, dup := s.pending[r.Seq]; dup || len(s.pending) >= maxPending {
			return nil
		}
		s.pending[r.Seq] = r
		var ready []protocol.Record
		for {
			next, ok := s.pending[s.nextRunner]
			if !ok {
				break
			}
			delete(s.pending, s.nextRunner)
			s.nextRunner++
			ready = append(ready, next)
		}
		return ready
	}
	return nil
}

// waiting reports whether runner records are held back by a gap.
func (s *sequencer) waiting() bool { return len(s.pending) > 0 }

// flush gives up on the gaps: it releases the held records in seq order and
// returns the ranges of seq numbers that never came.
func (s *sequencer) flush() (ready []protocol.Record, missing [][2]uint64) {
	seqs := make([]uint64, 0, len(s.pending))
	for q := range s.pending {
		seqs = append(seqs, q)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, q := range seqs {
		if q > s.nextRunner {
			missing = append(missing, [2]uint64{s.nextRunner, q - 1})
		}
		ready = append(ready, s.pending[q])
		delete(s.pending, q)
		s.nextRunner = q + 1
	}
	return ready, missing
}
