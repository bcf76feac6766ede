package protocol

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// fastSample builds the decompressed records of a message as the runner
// writes them: output records by MessageBuilder (text, escapes, base64,
// continued and empty pieces, both streams) between records it writes with
// encoding/json.
func fastSample(t *testing.T) []byte {
	t.Helper()
	at := time.Date(2026, 12, 6, 6, 0, 0, 123456789, time.UTC)
	var b MessageBuilder
	b.Reset()
	if err := b.AppendRecord(&Record{Type: TypeStarted, Src: SourceRunner, Seq: 1, Time: at, Started: &Started{Job: "web", HeartbeatSeconds: 5}}); err != nil {
		t.Fatal(err)
	}
	b.BeginOutput(SourceRunner, 2, at)
	for _, p := range []string{"plain line", "\x1b[32mgreen\x1b[0m \"q\" \\ / \t\r", "é – ✓ \u2028", "\xff\xfe not utf-8", "\u0085 C1", "", "\x00\x01\x7f"} {
		b.AppendLine(Stdout, at.Add(3*time.Millisecond), []byte(p), false)
		b.AppendLine(Stderr, at.Add(time.Second), []byte(p), true)
	}
	b.BeginOutput(SourceRunner, 3, at.Add(time.Hour))
	b.AppendLine(Stdout, at.Add(time.Hour), []byte("next record"), false)
	if err := b.AppendRecord(&Record{Type: TypeHeartbeat, Src: SourceRunner, Seq: 4, Time: at, Heartbeat: &Heartbeat{Lines: 3, Bytes: 9}}); err != nil {
		t.Fatal(err)
	}
	b.BeginOutput(SourceRunner, 5, at)
	if err := b.AppendRecord(&Record{Type: TypeExit, Src: SourceRunner, Seq: 6, Time: at, Exit: &Exit{Reason: ReasonCompleted, Outputs: []JobOutput{{Name: "url", Value: "https://x"}}}}); err != nil {
		t.Fatal(err)
	}
	body := b.Bytes()
	return append([]byte(nil), body[len(messageHead)-1:len(body)-1]...) // the records array
}

// slowRecords is the ordinary decoding of a records array.
func slowRecords(b []byte) ([]Record, error) {
	var recs []Record
	if err := decodeStrict(b, MaxDecompressedBytes, "feedback records", &recs); err != nil {
		return nil, err
	}
	return recs, checkKeys(b, "feedback records")
}

// TestFastRecordsMatchesJSON: what fastRecords accepts, the ordinary strict
// decoder accepts too, and both give the same records; on the runner's form
// the fast path does take it. Mutations of the sample (bytes replaced,
// dropped, doubled) probe the edges: for each, fastRecords either declines
// or agrees with encoding/json.
func TestFastRecordsMatchesJSON(t *testing.T) {
	sample := fastSample(t)
	check := func(b []byte, mustTake bool) {
		t.Helper()
		fast, ok := fastRecords(b, string(b))
		if !ok {
			if mustTake {
				t.Fatalf("fastRecords declines the runner's form:\n%s", b)
			}
			return
		}
		slow, err := slowRecords(b)
		if err != nil {
			t.Fatalf("fastRecords takes what encoding/json refuses (%v):\n%q", err, b)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fastRecords and encoding/json differ on\n%q\nfast: %+v\nslow: %+v", b, fast, slow)
		}
	}
	check(sample, true)
	fast, _ := fastRecords(sample, string(sample))
	if n := len(fast); n != 6 || fast[1].Output == nil || len(fast[1].Output.Lines) != 14 || fast[4].Output == nil || len(fast[4].Output.Lines) != 0 {
		t.Fatalf("sample decodes to %d records: %+v", n, fast)
	}
	rng := rand.New(rand.NewSource(26))
	alphabet := []byte(`{}[]",:\/0123456789-+.eEtruefalsnxbdcs u` + "\x00\x1b\x7f\xc2\x85\xff")
	mutate := func(i int) []byte {
		b := append([]byte(nil), sample...)
		switch rng.Intn(3) {
		case 0:
			b[i] = alphabet[rng.Intn(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b = append(b[:i+1], b[i:]...)
		}
		return b
	}
	for i := range sample {
		for k := 0; k < 12; k++ {
			check(mutate(i), false)
		}
	}
	// Escapes the fast path decodes itself, and those it leaves to
	// encoding/json (surrogates, bad escapes).
	for _, esc := range []string{`\u0041`, `\u00e9`, `\uFFFD`, `\ud83d\ude00`, `\udc00`, `\u12`, `\x41`, `\/`, `\b\f`, "\\\"", `\`} {
		b := bytes.Replace(sample, []byte("plain line"), []byte("a"+esc+"b"), 1)
		check(b, false)
	}
	for _, n := range []string{"0", "00", "01", "18446744073709551615", "18446744073709551616", "1e3", "1.0", "-1"} {
		check(bytes.Replace(sample, []byte(`"seq":2,`), []byte(`"seq":`+n+`,`), 1), false)
		check(bytes.Replace(sample, []byte(`"d":3,`), []byte(`"d":`+n+`,`), 1), false)
	}
}

// FuzzFastRecords: whatever fastRecords takes, encoding/json takes and
// decodes to the same records.
func FuzzFastRecords(f *testing.F) {
	f.Add(fastSample(&testing.T{}))
	f.Add([]byte(`[{"type":"output","src":"runner","seq":1,"t":"2026-12-06T06:00:00Z","output":{"lines":[]}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := fastRecords(b, string(b))
		if !ok {
			return
		}
		slow, err := slowRecords(b)
		if err != nil || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fastRecords takes %q as %+v; encoding/json: %+v, %v", b, fast, slow, err)
		}
	})
}
