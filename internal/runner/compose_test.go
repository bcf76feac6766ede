package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// batcherLimits are the knobs of one batcher run in these tests.
type batcherLimits struct {
	maxRequest, maxMessage int
	compress               bool
	compressMin, maxRaw    int
	// senderDelay: how long the fake sender takes per request; with
	// holdSender it is ready only when the batcher has stopped taking
	// input, so requests fill to their limits.
	senderDelay time.Duration
	holdSender  bool
}

func defaultLimits() batcherLimits {
	return batcherLimits{maxRequest: protocol.MaxMessageBytes, maxMessage: protocol.MaxMessageBytes, compress: true,
		compressMin: DefaultCompressMin, maxRaw: DefaultMaxRawMessageBytes}
}

// runBatcher feeds chunks to a batcher (then the exit) and returns the
// requests a fake sender got, in order.
func runBatcher(t testing.TB, l batcherLimits, chunks []*chunk) []*request {
	t.Helper()
	in := make(chan item, len(chunks)+1)
	ready := make(chan struct{}, 1)
	work := make(chan *request, 1)
	b := &batcher{maxRequest: l.maxRequest, maxMessage: l.maxMessage, compress: l.compress,
		compressMin: l.compressMin, maxRaw: l.maxRaw, now: time.Now, log: slog.New(slog.DiscardHandler),
		in: in, ready: ready, work: work}
	// A held sender is a slow one: it is ready only once the batcher has
	// stopped taking input, because the request is full or is the last one.
	// The batcher says so (stalled), so the pacing does not depend on the
	// scheduler.
	stalled := make(chan struct{}, 1)
	if l.holdSender {
		b.stalled = func() {
			select {
			case stalled <- struct{}{}:
			default:
			}
		}
	}
	var reqs []*request
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if l.holdSender {
				<-stalled
			}
			ready <- struct{}{}
			r, ok := <-work
			if !ok {
				return
			}
			reqs = append(reqs, r)
			if r.final {
				return
			}
			time.Sleep(l.senderDelay)
		}
	}()
	go b.run(&protocol.Started{Job: "t"})
	for _, c := range chunks {
		in <- item{chunk: c}
	}
	in <- item{exit: &protocol.Exit{Reason: protocol.ReasonCompleted}}
	<-done
	return reqs
}

// checkRequests checks every SQS limit on reqs, decodes them as the trigger
// does (protocol.DecodeMessage), and checks sequence numbers, deduplication
// ids and that the pieces reassemble to want (per stream, as the reader cut
// them: each piece then "\n" unless it continues).
func checkRequests(t testing.TB, l batcherLimits, reqs []*request, want map[protocol.Stream][]byte) (gz, plain int) {
	t.Helper()
	got := map[protocol.Stream][]byte{}
	next := uint64(1)
	for ri, r := range reqs {
		if len(r.msgs) == 0 || len(r.msgs) > MaxBatchEntries {
			t.Fatalf("request %d has %d messages", ri, len(r.msgs))
		}
		total := 0
		for _, m := range r.msgs {
			total += len(m.body)
			if len(m.body) > l.maxMessage || len(m.body) > protocol.MaxMessageBytes {
				t.Fatalf("request %d: a body of %d bytes (limit %d)", ri, len(m.body), l.maxMessage)
			}
			if m.raw > max(l.maxRaw, l.maxMessage) || m.raw > protocol.MaxDecompressedBytes {
				t.Fatalf("request %d: a body expands to %d bytes (max %d)", ri, m.raw, l.maxRaw)
			}
			isGz := strings.HasPrefix(m.body, `{"v":1,"gz":`)
			if isGz != m.gz {
				t.Fatalf("message gz %v, body %.20q", m.gz, m.body)
			}
			if isGz {
				gz++
				if !l.compress {
					t.Fatalf("a compressed body with compression off")
				}
			} else {
				plain++
				if m.raw != len(m.body) {
					t.Fatalf("plain body of %d bytes counted as %d", len(m.body), m.raw)
				}
			}
			recs, err := protocol.DecodeMessage([]byte(m.body))
			if err != nil {
				t.Fatalf("request %d: %v", ri, err)
			}
			if recs[0].Seq != m.first || recs[len(recs)-1].Seq != m.last || DedupID("p", m.first) != fmt.Sprintf("p-%d", recs[0].Seq) {
				t.Fatalf("message first %d last %d, records %d…%d", m.first, m.last, recs[0].Seq, recs[len(recs)-1].Seq)
			}
			for _, rec := range recs {
				if rec.Seq != next {
					t.Fatalf("record seq %d, want %d", rec.Seq, next)
				}
				next++
				if rec.Output == nil {
					continue
				}
				for _, ln := range rec.Output.Lines {
					p, err := ln.Bytes()
					if err != nil {
						t.Fatal(err)
					}
					got[ln.Stream] = append(got[ln.Stream], p...)
					if !ln.Cont {
						got[ln.Stream] = append(got[ln.Stream], '\n')
					}
				}
			}
		}
		if total != r.bytes || total > l.maxRequest || total > protocol.MaxMessageBytes {
			t.Fatalf("request %d: %d body bytes (counted %d, limit %d)", ri, total, r.bytes, l.maxRequest)
		}
	}
	if last := reqs[len(reqs)-1]; !last.final {
		t.Fatalf("the last request is not final")
	}
	for s, w := range want {
		if !bytes.Equal(got[s], w) {
			t.Fatalf("stream %s: got %d bytes, want %d; first difference at %d", s, len(got[s]), len(w), firstDiff(got[s], w))
		}
	}
	return gz, plain
}

// chunker builds chunks of pieces and remembers what the receiver must see.
type chunker struct {
	chunks []*chunk
	want   map[protocol.Stream][]byte
	cur    *chunk
}

func newChunker() *chunker { return &chunker{want: map[protocol.Stream][]byte{}} }

func (c *chunker) piece(s protocol.Stream, p []byte, cont bool) {
	if c.cur == nil || c.cur.stream != s || len(c.cur.data) > 64<<10 {
		c.cur = &chunk{stream: s, at: time.Now()}
		c.chunks = append(c.chunks, c.cur)
	}
	c.cur.add(p, cont, nil, nil)
	if !cont {
		c.cur.lines++
	}
	c.cur.bytes += int64(len(p))
	c.want[s] = append(c.want[s], p...)
	if !cont {
		c.want[s] = append(c.want[s], '\n')
	}
}

// logLine is realistic deploy output: timestamps, ids, durations.
func logLine(r *rand.Rand, i int) []byte {
	kinds := []string{
		"aws_ecs_service.web[%d]: Still modifying... [id=arn:aws:ecs:eu-west-1:123456789012:service/prod/web-%x, %ds elapsed]",
		"deployment.apps/api-%x configured (replicas %d/%d ready)",
		"\x1b[32m+\x1b[0m resource \"aws_s3_object\" \"asset_%d\" { etag = \"%x\" }",
		"Step %d/%d : RUN npm ci --prefer-offline (cache key %x)",
	}
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Millisecond).Format(time.RFC3339Nano)
	return []byte(ts + " " + fmt.Sprintf(kinds[i%len(kinds)], r.IntN(1000), r.Uint64(), r.IntN(600)))
}

func randomPiece(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// adversarial is a mix of compressible lines, random binary pieces,
// random printable text, long lines in 64 KiB pieces and empty lines,
// across both streams.
func adversarial(seed uint64, total int, maxPiece int) *chunker {
	r := rand.New(rand.NewPCG(seed, seed+1))
	c := newChunker()
	size := 0
	for i := 0; size < total; i++ {
		s := protocol.Stdout
		if r.IntN(5) == 0 {
			s = protocol.Stderr
		}
		var p []byte
		cont := false
		switch k := r.IntN(20); {
		case k < 12:
			p = logLine(r, i)
		case k < 14:
			p = randomPiece(r, r.IntN(maxPiece+1))
			cont = r.IntN(2) == 0
		case k < 15:
			p = make([]byte, r.IntN(maxPiece+1))
			for j := range p {
				p[j] = byte(' ' + r.IntN(95))
			}
		case k < 16: // a long line: full pieces that continue, then its end
			for range 1 + r.IntN(6) {
				c.piece(s, bytes.Repeat([]byte("long line "), maxPiece/10), true)
				size += maxPiece
			}
			p = []byte("end of long line")
		case k < 17:
			p = nil
		default:
			p = bytes.Repeat([]byte{'='}, r.IntN(200))
		}
		c.piece(s, p, cont)
		size += len(p)
	}
	return c
}

func TestBatcherLimitsAdversarial(t *testing.T) {
	cases := map[string]batcherLimits{
		"default":            defaultLimits(),
		"default-held":       func() batcherLimits { l := defaultLimits(); l.holdSender = true; return l }(),
		"default-slow":       func() batcherLimits { l := defaultLimits(); l.senderDelay = 2 * time.Millisecond; return l }(),
		"off-held":           func() batcherLimits { l := defaultLimits(); l.compress = false; l.holdSender = true; return l }(),
		"small-raw-held":     func() batcherLimits { l := defaultLimits(); l.maxRaw = 256 << 10; l.holdSender = true; return l }(),
		"many-messages-held": {maxRequest: 256 << 10, maxMessage: 32 << 10, compress: true, compressMin: 1024, maxRaw: 512 << 10, holdSender: true},
		"tiny-held":          {maxRequest: 64 << 10, maxMessage: 64 << 10, compress: true, compressMin: 8 << 10, maxRaw: 1 << 20, holdSender: true},
	}
	for name, l := range cases {
		t.Run(name, func(t *testing.T) {
			maxPiece := min(64<<10, (l.maxMessage-1024)*3/4)
			c := adversarial(uint64(len(name)), 24<<20, maxPiece)
			reqs := runBatcher(t, l, c.chunks)
			gz, plain := checkRequests(t, l, reqs, c.want)
			var wire, raw int
			for _, r := range reqs {
				wire += r.bytes
				for _, m := range r.msgs {
					raw += m.raw
				}
			}
			t.Logf("%d requests, %d compressed and %d plain messages, %d → %d body bytes", len(reqs), gz, plain, raw, wire)
			if l.compress && l.holdSender && gz == 0 {
				t.Fatalf("nothing was compressed")
			}
		})
	}
}

// jobBytes is the job output a request carries: its lines' bytes, each with
// its newline unless it continues.
func jobBytes(t testing.TB, r *request) int {
	t.Helper()
	n := 0
	for _, m := range r.msgs {
		recs, err := protocol.DecodeMessage([]byte(m.body))
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Output == nil {
				continue
			}
			for _, ln := range rec.Output.Lines {
				p, err := ln.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				n += len(p)
				if !ln.Cont {
					n++
				}
			}
		}
	}
	return n
}

// TestBatcherCompressibleFillsRequests: under a burst of realistic deploy
// lines (timestamps, random ids) and a sender that is ready only when the
// batcher has filled a request, every request but the last is full: without
// compression it holds its 10 messages or close to 1 MiB of bodies; with
// compression it carries more job output than any uncompressed request can
// (1 MiB). How much more is a figure of the encoder, measured by
// BenchmarkBatcherSaturated (docs/BENCHMARKS.md), not asserted here.
func TestBatcherCompressibleFillsRequests(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	c := newChunker()
	for i := range 150_000 {
		c.piece(protocol.Stdout, logLine(r, i), false)
	}
	var total int
	for _, ch := range c.chunks {
		total += int(ch.bytes) + int(ch.lines)
	}
	for _, compress := range []bool{true, false} {
		l := defaultLimits()
		l.holdSender, l.compress = true, compress
		reqs := runBatcher(t, l, c.chunks)
		gz, _ := checkRequests(t, l, reqs, c.want)
		minJob := -1
		for i, rq := range reqs[:len(reqs)-1] {
			job := jobBytes(t, rq)
			if minJob < 0 || job < minJob {
				minJob = job
			}
			switch {
			case compress && job <= protocol.MaxMessageBytes:
				t.Fatalf("compressed request %d of %d carries only %d job bytes", i, len(reqs), job)
			case !compress && len(rq.msgs) < MaxBatchEntries && rq.bytes < protocol.MaxMessageBytes-4<<10:
				t.Fatalf("request %d of %d is not full: %d messages, %d body bytes", i, len(reqs), len(rq.msgs), rq.bytes)
			}
		}
		if compress && gz == 0 {
			t.Fatalf("nothing was compressed")
		}
		if !compress && gz != 0 {
			t.Fatalf("%d compressed messages with compression off", gz)
		}
		t.Logf("compress %v: %d requests for %d bytes of lines, at least %d per request but the last, %d compressed messages",
			compress, len(reqs), total, minJob, gz)
	}
}

// TestBatcherLoneLinePlain: with an idle sender, a lone line, and a small
// batch, go out at once and uncompressed.
func TestBatcherLoneLinePlain(t *testing.T) {
	c := newChunker()
	c.piece(protocol.Stdout, []byte("a lone line"), false)
	c.cur = nil
	var small []byte
	for i := range 40 {
		small = append(small, fmt.Sprintf("small batch line %d of deploy output\n", i)...)
	}
	c.piece(protocol.Stderr, small[:len(small)-1], false)
	l := defaultLimits()
	reqs := runBatcher(t, l, c.chunks)
	gz, _ := checkRequests(t, l, reqs, c.want)
	if gz != 0 {
		t.Fatalf("%d compressed messages for a lone line and a small batch", gz)
	}
}

// TestBatcherIncompressibleGoesPlain: random bytes are not worth
// compressing; they go plain and requests still fill up.
func TestBatcherIncompressibleGoesPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	c := newChunker()
	for range 200 {
		c.piece(protocol.Stdout, randomPiece(r, 48<<10), true)
	}
	l := defaultLimits()
	l.holdSender = true
	reqs := runBatcher(t, l, c.chunks)
	gz, plain := checkRequests(t, l, reqs, c.want)
	if gz != 0 {
		t.Fatalf("%d random messages were sent compressed", gz)
	}
	for i, rq := range reqs[:len(reqs)-1] {
		if rq.bytes < 900<<10 {
			t.Fatalf("request %d of random bytes holds only %d bytes", i, rq.bytes)
		}
	}
	t.Logf("%d requests, %d plain messages", len(reqs), plain)
}

func FuzzBatcher(f *testing.F) {
	f.Add([]byte("hello\nworld\n\xff\xfe\x00\n"), uint32(3), uint16(100), false)
	f.Add(bytes.Repeat([]byte("deploy step ok\n"), 3000), uint32(5000), uint16(9000), true)
	f.Fuzz(func(t *testing.T, data []byte, seed uint32, cut uint16, held bool) {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		l := batcherLimits{maxRequest: 16<<10 + int(seed%(48<<10)), compress: seed%7 != 0, holdSender: held}
		l.maxMessage = max(4<<10, l.maxRequest/(1+int(seed%5)))
		l.compressMin = 1 + int(seed%(8<<10))
		l.maxRaw = l.maxMessage + int(cut)*8
		maxPiece := (l.maxMessage - 1024) * 3 / 4
		c := newChunker()
		// Pieces from data: cut at newlines and at most maxPiece or cut bytes;
		// repeat it (amplified with random bytes) to fill a few requests.
		for rep := 0; rep < 1+int(seed%4); rep++ {
			rest := data
			for len(rest) > 0 {
				n := min(len(rest), maxPiece, 1+int(cut))
				if i := bytes.IndexByte(rest[:n], '\n'); i >= 0 {
					c.piece(protocol.Stream([]string{"out", "err"}[r.IntN(2)]), rest[:i], false)
					rest = rest[i+1:]
					continue
				}
				c.piece(protocol.Stdout, rest[:n], true)
				rest = rest[n:]
			}
			c.piece(protocol.Stderr, randomPiece(r, r.IntN(maxPiece)), r.IntN(2) == 0)
		}
		reqs := runBatcher(t, l, c.chunks)
		checkRequests(t, l, reqs, c.want)
	})
}

// runCompare runs a job through moto and checks its stdout byte for byte.
func runCompare(t *testing.T, cfg func(*Config), want []byte, mode string, args ...string) Result {
	t.Helper()
	res, r := runJob(t, func(c *Config) {
		c.Stdout = nil
		if cfg != nil {
			cfg(c)
		}
	}, mode, args...)
	if !res.Delivered || res.ExitCode() != 0 {
		t.Fatalf("result %+v", res)
	}
	out, errOut, _ := r.streams(t)
	if !bytes.Equal(out, want) || len(errOut) != 0 {
		t.Fatalf("stdout differs: got %d bytes, want %d; first difference at %d", len(out), len(want), firstDiff(out, want))
	}
	if r.dups != 0 {
		t.Fatalf("%d duplicates", r.dups)
	}
	t.Logf("%d requests, %d messages (%d compressed), %d body bytes (%d uncompressed)",
		res.Requests, res.Messages, res.Compressed, res.BodyBytes, res.RawBodyBytes)
	return res
}

func TestRoundTripCompressibleThroughMoto(t *testing.T) {
	const n = 150_000 // about 17 MB
	res := runCompare(t, nil, realisticOutput(n), "deploylog", strconv.Itoa(n))
	// The job writes up to 200 KiB at a time, so some message holds more
	// than the 8 KiB that are worth compressing. How much of the burst goes
	// compressed depends on how busy the sender is, i.e. on timing: logged
	// by runCompare, not asserted.
	if res.Compressed == 0 {
		t.Fatalf("a burst of deploy lines was not compressed: %+v", res)
	}
}

func TestRoundTripCompressOffThroughMoto(t *testing.T) {
	const n = 50_000
	res := runCompare(t, func(c *Config) { c.Compress = CompressOff }, realisticOutput(n), "deploylog", strconv.Itoa(n))
	if res.Compressed != 0 || res.RawBodyBytes != res.BodyBytes {
		t.Fatalf("compression off, yet %d compressed messages", res.Compressed)
	}
}

func TestRoundTripRandomBytesThroughMoto(t *testing.T) {
	const n = 8 << 20
	res := runCompare(t, nil, randomOutput(n), "random", strconv.Itoa(n))
	if res.Exit.Bytes != n {
		t.Fatalf("exit bytes %d", res.Exit.Bytes)
	}
	// Random bytes do not shrink: at most a few bodies that happened to
	// hold short lines go compressed.
	if res.BodyBytes < int64(n) {
		t.Fatalf("%d random bytes in %d body bytes?", n, res.BodyBytes)
	}
}

// TestLoneLinesGoPlain: lines written one at a time reach the queue at
// once, each in its own uncompressed request. The job writes the next line
// only when the queue has the previous one.
func TestLoneLinesGoPlain(t *testing.T) {
	const n = 5
	q := newMemQueue(t)
	g := newGate(t)
	next := 0
	q.onBody = func(body string) {
		if strings.Contains(body, fmt.Sprintf("gated %d", next)) {
			if next++; next < n {
				g.release()
			}
		}
	}
	g.release()
	res := Run(context.Background(), sinkConfig(t, "gated", strconv.Itoa(n), string(g)), q)
	if !res.Delivered || res.Compressed != 0 || res.Exit.Lines != n {
		t.Fatalf("result %+v", res)
	}
	lines := 0
	for _, b := range q.bodies {
		if !strings.HasPrefix(b, `{"v":1,"records":[`) {
			t.Fatalf("body %.40q is not plain", b)
		}
		if c := strings.Count(b, "gated "); c > 1 {
			t.Fatalf("%d lines in one message: %s", c, b)
		} else {
			lines += c
		}
	}
	// started, 5 lines, exit: started and exit may share a request with a
	// line, never two lines one.
	if lines != n || res.Requests < n {
		t.Fatalf("%d requests, %d lines", res.Requests, lines)
	}
}

func TestParseConfigCompress(t *testing.T) {
	base := []string{protocol.EnvRunID + "=01JDTESTRUN0000000000000000", protocol.EnvQueueURL + "=https://q"}
	for v, want := range map[string]string{"": CompressAuto, "auto": CompressAuto, "off": CompressOff, "gzip": ""} {
		env := base
		if v != "" {
			env = append(env, EnvCompress+"="+v)
		}
		c, err := ParseConfig([]string{"true"}, env)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), EnvCompress) {
				t.Fatalf("%s=%q: err %v", EnvCompress, v, err)
			}
			continue
		}
		if err != nil || c.Compress != want {
			t.Fatalf("%s=%q: %q, %v", EnvCompress, v, c.Compress, err)
		}
	}
}
