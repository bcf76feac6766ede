package runner

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// BenchmarkRunLogChunk is the run log's work per chunk: 64 KiB reads of the
// benchmark's 100-byte lines written as run log lines to io.Discard.
func BenchmarkRunLogChunk(b *testing.B) {
	chunks := benchChunks(saturatedPieces("synthetic")[:20000], 64<<10)
	var total int64
	for _, c := range chunks {
		total += c.bytes
	}
	b.SetBytes(total)
	for b.Loop() {
		l := &runLog{w: io.Discard, runID: "01JDBENCH000000000000000000"}
		for _, c := range chunks {
			l.chunk(c)
		}
	}
}

// benchChunks cuts lines into chunks of about size bytes, as the readers do.
func benchChunks(lines [][]byte, size int) []*chunk {
	var out []*chunk
	var c *chunk
	var spans []span
	for _, l := range lines {
		if c == nil || len(c.data) >= size {
			c = &chunk{stream: protocol.Stdout, at: time.Now()}
			out = append(out, c)
		}
		c.add(l, false, nil, &spans)
		c.lines++
		c.bytes += int64(len(l) + 1)
	}
	return out
}

// BenchmarkRunCountingSinkRunLog is BenchmarkRunCountingSink with the run log
// on (written to io.Discard).
func BenchmarkRunCountingSinkRunLog(b *testing.B) {
	argv, env := jobArgs("lines", strconv.Itoa(benchLines))
	b.SetBytes(benchLines * 100)
	for b.Loop() {
		c := Config{Args: argv, Env: env, RunID: "01JDBENCH000000000000000000", QueueURL: "mem://", Heartbeat: time.Hour,
			LogFormat: protocol.LogFormatRecords, Stdout: io.Discard, Stderr: io.Discard}
		res := Run(context.Background(), c, &countSink{})
		if !res.Delivered || res.Exit.Lines != benchLines {
			b.Fatalf("result %+v", res)
		}
	}
}
