package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// compressOps appends pieces to a builder with a compressor started at the
// beginning, flushing before piece i when flush(i) says so, and checks that
// the compressed body is within the last Bound and decodes to the same
// records as the plain body.
// testCompressor is reused: a gzip writer is large to allocate.
var testCompressor MessageCompressor

func compressOps(t testing.TB, pieces [][]byte, flush func(i int) bool) (plainLen, gzLen int) {
	t.Helper()
	var b MessageBuilder
	c := &testCompressor
	b.Reset()
	c.Start(&b)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	seq := uint64(1)
	b.BeginOutput(SourceRunner, seq, t0)
	for i, p := range pieces {
		m := b.Mark()
		if flush(i) {
			c.FlushTo(&b, m)
		}
		if i%17 == 16 { // a record in between: closes the output record
			seq++
			if err := b.AppendRecord(&Record{Type: TypeHeartbeat, Src: SourceRunner, Seq: seq, Time: t0, Heartbeat: &Heartbeat{Lines: int64(i)}}); err != nil {
				t.Fatal(err)
			}
			seq++
			b.BeginOutput(SourceRunner, seq, t0)
		}
		b.AppendLine(Stdout, t0.Add(time.Duration(i)*time.Millisecond), p, i%5 == 0)
		if i%7 == 6 { // an append that is undone
			m := b.Mark()
			b.AppendLine(Stderr, t0, []byte("rolled back"), false)
			b.Rollback(m)
		}
	}
	bound := c.Bound(&b)
	plainLen = b.Len()
	plain, gz := c.Finish(&b)
	if len(plain) != plainLen {
		t.Fatalf("plain body %d bytes, Len said %d", len(plain), plainLen)
	}
	if len(gz) > bound {
		t.Fatalf("compressed body %d bytes, over its bound %d (plain %d)", len(gz), bound, len(plain))
	}
	var m Message // a plain body may be over the 1 MiB that DecodeMessage takes
	if err := decodeStrict(plain, len(plain), "plain body", &m); err != nil {
		t.Fatal(err)
	}
	want := m.Records
	got, err := decodeLarge(gz)
	if err != nil {
		t.Fatalf("compressed body: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compressed body decodes differently")
	}
	if !bytes.HasPrefix(gz, []byte(`{"v":1,"gz":"`)) {
		t.Fatalf("compressed body starts %.20q", gz)
	}
	return len(plain), len(gz)
}

// decodeLarge is DecodeMessage (what the trigger calls) for bodies within
// SQS's limit, and the same decoding without that limit for the larger ones
// of these tests.
func decodeLarge(body []byte) ([]Record, error) {
	if len(body) <= MaxMessageBytes {
		return DecodeMessage(body)
	}
	var m Message
	if err := decodeStrict(body, len(body), "large body", &m); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(m.Gz)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	inner, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var recs []Record
	return recs, decodeStrict(inner, len(inner), "records", &recs)
}

func randomBytes(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestMessageCompressorBoundAndRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	logLine := func(i int) []byte {
		return []byte(strings.Repeat("deploying service web-frontend revision ", 1+i%3) + string(rune('a'+i%26)))
	}
	cases := map[string]func(i int) []byte{
		"compressible": logLine,
		"random":       func(i int) []byte { return randomBytes(r, 1+r.IntN(70000)) },
		"random-text": func(i int) []byte {
			p := make([]byte, 1+r.IntN(65536))
			for j := range p {
				p[j] = byte(' ' + r.IntN(95))
			}
			return p
		},
		"mixed": func(i int) []byte {
			if i%3 == 0 {
				return randomBytes(r, r.IntN(65536))
			}
			return logLine(i)
		},
		"empty": func(int) []byte { return nil },
	}
	flushes := map[string]func(i int) bool{
		"never":  func(int) bool { return false },
		"always": func(int) bool { return true },
		"some":   func(i int) bool { return i%13 == 5 },
		"random": func(int) bool { return r.IntN(4) == 0 },
	}
	for name, gen := range cases {
		for fname, flush := range flushes {
			t.Run(name+"/"+fname, func(t *testing.T) {
				for _, n := range []int{0, 1, 2, 10, 60} {
					if name == "compressible" || name == "empty" {
						n *= 100
					}
					var pieces [][]byte
					for i := range n {
						pieces = append(pieces, gen(i))
					}
					plain, gz := compressOps(t, pieces, flush)
					if n > 0 && name == "compressible" && (fname == "never" || fname == "some") && gz*5 > plain {
						t.Fatalf("compressible lines: %d → %d bytes", plain, gz)
					}
				}
			})
		}
	}
}

// TestMessageCompressorIncompressible checks the bound stays tight enough:
// for random bytes the compressed body is close to the bound, and the bound
// exceeds a plain body only by base64's third on top of deflate's few bytes.
func TestMessageCompressorIncompressible(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var pieces [][]byte
	for range 40 {
		pieces = append(pieces, randomBytes(r, 65536))
	}
	plain, gz := compressOps(t, pieces, func(i int) bool { return i%8 == 0 })
	t.Logf("random bytes: plain %d, compressed %d", plain, gz)
	if gz < plain*9/10 {
		t.Fatalf("random bytes compressed from %d to %d?", plain, gz)
	}
}

func FuzzMessageCompressor(f *testing.F) {
	f.Add([]byte("hello\nworld\n\xff\x00"), uint16(3), uint64(1))
	f.Add(bytes.Repeat([]byte("abc"), 5000), uint16(100), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, flushMask uint64) {
		step := 1 + int(cut)%4096
		var pieces [][]byte
		for len(data) > 0 {
			n := min(step, len(data))
			pieces = append(pieces, data[:n])
			data = data[n:]
		}
		compressOps(t, pieces, func(i int) bool { return flushMask>>(i%64)&1 == 1 })
	})
}
