package trigger

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// benchMessages builds compressed message bodies as the runner sends them
// (MessageBuilder + MessageCompressor) holding lines like the bench's
// "lines" job: 100 bytes each, a 9-digit counter then the alphabet.
func benchMessages(tb testing.TB, msgs, recsPerMsg, linesPerRec int) (bodies [][]byte, lines int) {
	tb.Helper()
	line := make([]byte, 99)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	t0 := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	var b protocol.MessageBuilder
	var c protocol.MessageCompressor
	seq := uint64(1)
	for m := 0; m < msgs; m++ {
		b.Reset()
		c.Start(&b)
		for r := 0; r < recsPerMsg; r++ {
			at := t0.Add(time.Duration(seq) * time.Millisecond)
			b.BeginOutput(protocol.SourceRunner, seq, at)
			seq++
			for l := 0; l < linesPerRec; l++ {
				copy(line, fmt.Sprintf("%09d ", lines))
				b.AppendLine(protocol.Stdout, at, line, false)
				lines++
			}
		}
		_, gz := c.Finish(&b)
		bodies = append(bodies, append([]byte(nil), gz...))
	}
	return bodies, lines
}

// streamWatch is a watch that prints plain output to w, as deploy-trigger
// --output plain does, with nothing but the streaming path set up.
func streamWatch(w io.Writer) (*watch, *orderedOutput) {
	o := newOrderedOutput(w, io.Discard)
	p := &redactingPrinter{printer: newPlainPrinter(o.stdout(), o.stderr(), false, false)}
	return &watch{out: p, seq: newSequencer(), openLine: map[protocol.Stream]bool{}, cfg: &Config{},
		set: watchSettings{now: time.Now, flush: o.Flush}, res: &Result{}}, o
}

// BenchmarkStreamPath feeds compressed messages through what deploy-trigger
// does with each received batch: decode, sequence, clean, print (plain, no
// colour) to a discarding stdout, flushing after each batch as the tail loop
// does. Recorded in docs/BENCHMARKS.md, not asserted.
func BenchmarkStreamPath(b *testing.B) {
	bodies, lines := benchMessages(b, 10, 4, 2500)
	var size int
	for _, m := range bodies {
		size += len(m)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, o := streamWatch(io.Discard)
		for _, m := range bodies {
			var d decoded
			d.recs, d.err = protocol.DecodeMessage(m)
			if d.err != nil {
				b.Fatal(d.err)
			}
			if err := w.onEvent(context.Background(), rxEvent{msgs: []decoded{d}}); err != nil {
				b.Fatal(err)
			}
			if err := o.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		if w.lines != int64(lines) {
			b.Fatalf("printed %d lines, want %d", w.lines, lines)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
