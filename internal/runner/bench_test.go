package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"

	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// benchLines is the job output of the benchmarks: lines of 100 bytes.
const benchLines = 200_000

// BenchmarkPipeRead is the baseline: the same job, its stdout read from a
// pipe into a 64 KiB buffer and thrown away.
func BenchmarkPipeRead(b *testing.B) {
	argv, env := jobArgs("lines", strconv.Itoa(benchLines))
	b.SetBytes(benchLines * 100)
	buf := make([]byte, 64<<10)
	for b.Loop() {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := out.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		cmd.Wait()
	}
}

// BenchmarkRunCountingSink is the whole runner (pipes, splitting, redaction,
// encoding, batching) against an in-memory sink that counts.
func BenchmarkRunCountingSink(b *testing.B) {
	argv, env := jobArgs("lines", strconv.Itoa(benchLines))
	b.SetBytes(benchLines * 100)
	var requests, body int64
	for b.Loop() {
		q := &countSink{}
		c := Config{Args: argv, Env: env, RunID: "01JDBENCH000000000000000000", QueueURL: "mem://", Heartbeat: time.Hour}
		res := Run(context.Background(), c, q)
		if !res.Delivered || res.Exit.Lines != benchLines {
			b.Fatalf("result %+v", res)
		}
		requests, body = int64(res.Requests), res.BodyBytes
	}
	b.ReportMetric(float64(requests), "requests/op")
	b.ReportMetric(float64(body)/float64(requests), "body-bytes/request")
}

// BenchmarkMessageBuilder encodes 100-byte lines into 1 MiB messages.
func BenchmarkMessageBuilder(b *testing.B) {
	line := []byte(fmt.Sprintf("%099d", 42))
	now := time.Now()
	var mb protocol.MessageBuilder
	b.SetBytes(int64(len(line) + 1))
	mb.Reset()
	mb.BeginOutput(protocol.SourceRunner, 1, now)
	for b.Loop() {
		mb.AppendLine(protocol.Stdout, now, line, false)
		if mb.Len() > protocol.MaxMessageBytes {
			mb.Reset()
			mb.BeginOutput(protocol.SourceRunner, 1, now)
		}
	}
}

// BenchmarkRedactorFind scans 100-byte lines for secrets and key shapes.
func BenchmarkRedactorFind(b *testing.B) {
	r := NewRedactor([]string{"a-secret-value", "another-one-here"})
	line := []byte("2026-11-22T10:00:00Z INFO deploying service web-frontend to cluster prod-eu-1, revision 42 (ok)")
	b.SetBytes(int64(len(line)))
	var spans []span
	for b.Loop() {
		spans = r.Find(line, spans)
	}
}

// BenchmarkGzipMessage measures what compression would buy: the size of a
// 1 MiB message of the benchmark's lines after EncodeMessageGzip.
func BenchmarkGzipMessage(b *testing.B) {
	var recs []protocol.Record
	var lines []protocol.Line
	size := 0
	for i := 0; size < 800<<10; i++ {
		x := fmt.Sprintf("%09d %s", i, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmn")
		lines = append(lines, protocol.Line{Stream: protocol.Stdout, Text: x})
		size += len(x) + 1
	}
	recs = append(recs, protocol.Record{Type: protocol.TypeOutput, Src: protocol.SourceRunner, Seq: 1, Time: time.Now(), Output: &protocol.Output{Lines: lines}})
	plain, _ := protocol.EncodeMessage(recs)
	b.SetBytes(int64(size))
	var gz []byte
	for b.Loop() {
		gz, _ = protocol.EncodeMessageGzip(recs)
	}
	b.ReportMetric(float64(len(plain))/float64(len(gz)), "ratio")
}

// saturatedPieces is ~32 MB of lines: the benchmark's numbered synthetic
// lines, or deploy-like lines (logLine: timestamps, random ids).
func saturatedPieces(kind string) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	var lines [][]byte
	for i, size := 0, 0; size < 32<<20; i++ {
		var l []byte
		if kind == "synthetic" {
			l = []byte(fmt.Sprintf("%09d %s", i, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmn"))
		} else {
			l = logLine(r, i)
		}
		lines = append(lines, l)
		size += len(l) + 1
	}
	return lines
}

// BenchmarkBatcherSaturated is the batcher's encoder at saturation: every
// request filled to its limits (10 messages, 1 MiB of bodies) before the
// next starts, with compression auto or off. It reports job bytes and body
// bytes per request.
func BenchmarkBatcherSaturated(b *testing.B) {
	for _, kind := range []string{"synthetic", "deploylog"} {
		lines := saturatedPieces(kind)
		var total int64
		for _, l := range lines {
			total += int64(len(l) + 1)
		}
		for _, mode := range []string{CompressAuto, CompressOff} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				b.SetBytes(total)
				var requests, wire int64
				now := time.Now()
				bat := &batcher{maxRequest: protocol.MaxMessageBytes, maxMessage: protocol.MaxMessageBytes,
					compress: mode == CompressAuto, compressMin: DefaultCompressMin, maxRaw: DefaultMaxRawMessageBytes,
					now: time.Now, log: slog.New(slog.DiscardHandler)}
				for b.Loop() {
					requests, wire = 0, 0
					bat.cur = &request{}
					flush := func() {
						bat.closeMsg()
						requests++
						wire += int64(bat.cur.bytes)
						bat.cur = &request{}
					}
					var enc []byte
					for _, l := range lines {
						// The readers encode each piece (chunk.push); counted here too.
						enc = protocol.AppendPiece(enc[:0], l)
						if !bat.addPiece(protocol.Stdout, now, enc, false) {
							flush()
							if !bat.addPiece(protocol.Stdout, now, enc, false) {
								b.Fatal("a line does not fit in an empty request")
							}
						}
					}
					flush()
				}
				b.ReportMetric(float64(total)/float64(requests), "job-bytes/request")
				b.ReportMetric(float64(wire)/float64(requests), "body-bytes/request")
				b.ReportMetric(float64(total)/float64(wire), "job-bytes/body-byte")
			})
		}
	}
}
