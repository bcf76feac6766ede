package runner

import (
	"log/slog"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Chunks already waiting when the sender becomes free go into the request
// it is handed, not into the next one: here 20 chunks wait and the sender
// is free from the start, so the first request carries them all (before,
// the batcher's select picked input or hand-off at random, so a request
// under a burst often went with one chunk of the twenty).
func TestBatcherTakesWaitingInputFirst(t *testing.T) {
	const n = 20
	in := make(chan item, n+1)
	for i := range n {
		c := &chunk{stream: protocol.Stdout, at: time.Now()}
		c.add([]byte{'a' + byte(i)}, false, nil, nil)
		c.lines, c.bytes = 1, 2
		in <- item{chunk: c}
	}
	ready := make(chan struct{}, 1)
	ready <- struct{}{} // the sender is idle from the start
	work := make(chan *request, 1)
	b := &batcher{maxRequest: protocol.MaxMessageBytes, maxMessage: protocol.MaxMessageBytes, compress: true,
		compressMin: DefaultCompressMin, maxRaw: DefaultMaxRawMessageBytes, now: time.Now,
		log: slog.New(slog.DiscardHandler), in: in, ready: ready, work: work}
	go b.run(nil)
	first := <-work
	lines := 0
	for _, m := range first.msgs {
		recs, err := protocol.DecodeMessage([]byte(m.body))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Output != nil {
				lines += len(r.Output.Lines)
			}
		}
	}
	if lines != n {
		t.Errorf("the first request carries %d of the %d lines that were waiting", lines, n)
	}
	in <- item{exit: &protocol.Exit{Reason: protocol.ReasonCompleted}}
	ready <- struct{}{}
	if last := <-work; !last.final {
		t.Error("the second request is not the final one")
	}
	ready <- struct{}{}
	if _, ok := <-work; ok {
		t.Error("work is not closed after the final request")
	}
}

// burstBatcher is a batcher whose sender is idle from the start, with the
// burst rule on (minBurst, linger).
func burstBatcher(in chan item, minBurst int64, linger time.Duration) (*batcher, chan struct{}, chan *request) {
	ready := make(chan struct{}, 1)
	ready <- struct{}{}
	work := make(chan *request, 1)
	return &batcher{maxRequest: protocol.MaxMessageBytes, maxMessage: protocol.MaxMessageBytes, compress: true,
		compressMin: DefaultCompressMin, maxRaw: DefaultMaxRawMessageBytes, now: time.Now,
		log: slog.New(slog.DiscardHandler), in: in, ready: ready, work: work, minBurst: minBurst, linger: linger}, ready, work
}

// readChunk is a pipe read of n bytes of 100-byte lines; more when it
// filled the reader's buffer.
func readChunk(n int, more bool) *chunk {
	c := benchLineChunk(n / 100)
	c.at, c.more = time.Now(), more
	return c
}

func requestLines(t *testing.T, r *request) int {
	t.Helper()
	lines := 0
	for _, m := range r.msgs {
		recs, err := protocol.DecodeMessage([]byte(m.body))
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Output != nil {
				lines += len(rec.Output.Lines)
			}
		}
	}
	return lines
}

// During a burst (reads that fill the buffer) the request waits for the
// rest of it although the sender is idle: here the chunks come one at a
// time, and the request goes with all of them when a read comes back short
// (the burst ended). Outside a burst, one short read goes at once.
func TestBatcherBurstWaitsForTheRestOfIt(t *testing.T) {
	in := make(chan item)
	b, ready, work := burstBatcher(in, 64<<20, time.Hour)
	go b.run(nil)
	for range 8 {
		in <- item{chunk: readChunk(64<<10, true)} // unbuffered: taken one by one
	}
	in <- item{chunk: readChunk(3000, false)}
	first := <-work
	if got, want := requestLines(t, first), 8*655+30; got != want {
		t.Errorf("the burst went in a request of %d lines; want all %d", got, want)
	}
	// Not a burst: a short read goes at once, nothing else waiting.
	ready <- struct{}{}
	in <- item{chunk: readChunk(200, false)}
	if got := requestLines(t, <-work); got != 2 {
		t.Errorf("a lone read went with %d lines; want 2", got)
	}
	in <- item{exit: &protocol.Exit{Reason: protocol.ReasonCompleted}}
	ready <- struct{}{}
	if last := <-work; !last.final {
		t.Error("not the final request")
	}
}

// A burst's request goes once it holds minBurst bytes of job output, and
// the burst goes on in the next.
func TestBatcherBurstRequestGoesAtMinBurst(t *testing.T) {
	in := make(chan item)
	b, ready, work := burstBatcher(in, 250_000, time.Hour)
	go b.run(nil)
	for range 4 {
		in <- item{chunk: readChunk(64<<10, true)}
	}
	first := <-work // 4 × 65,500 bytes ≥ 250,000: it goes mid-burst
	if got := requestLines(t, first); got != 4*655 {
		t.Errorf("the first request has %d lines; want %d", got, 4*655)
	}
	ready <- struct{}{}
	in <- item{chunk: readChunk(64<<10, true)}
	in <- item{exit: &protocol.Exit{Reason: protocol.ReasonCompleted}}
	if last := <-work; !last.final || requestLines(t, last) != 655 {
		t.Errorf("the final request: final %v, %d lines", last.final, requestLines(t, last))
	}
}

// A burst that stops without a short read (the job wrote exactly a buffer
// and waits) does not hold its request for long: it goes after linger.
func TestBatcherBurstLingerEnds(t *testing.T) {
	in := make(chan item)
	b, ready, work := burstBatcher(in, 64<<20, time.Millisecond)
	go b.run(nil)
	in <- item{chunk: readChunk(64<<10, true)}
	if got := requestLines(t, <-work); got != 655 {
		t.Errorf("the request has %d lines; want 655", got)
	}
	ready <- struct{}{}
	in <- item{exit: &protocol.Exit{Reason: protocol.ReasonCompleted}}
	if last := <-work; !last.final {
		t.Error("not the final request")
	}
}
