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
