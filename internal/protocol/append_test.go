package protocol

import (
	"bytes"
	"testing"
	"time"
)

func buildLines(t testing.TB, pieces [][]byte) []byte {
	t.Helper()
	var b MessageBuilder
	b.Reset()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	if err := b.AppendRecord(&Record{Type: TypeStarted, Src: SourceRunner, Seq: 1, Time: t0, Started: &Started{HeartbeatSeconds: 10}}); err != nil {
		t.Fatal(err)
	}
	b.BeginOutput(SourceRunner, 2, t0)
	for i, p := range pieces {
		s := Stdout
		if i%2 == 1 {
			s = Stderr
		}
		b.AppendLine(s, t0.Add(time.Duration(i)*time.Millisecond), p, i%3 == 0)
	}
	if err := b.AppendRecord(&Record{Type: TypeHeartbeat, Src: SourceRunner, Seq: 3, Time: t0, Heartbeat: &Heartbeat{Lines: 1}}); err != nil {
		t.Fatal(err)
	}
	b.BeginOutput(SourceRunner, 4, t0)
	b.AppendLine(Stdout, t0, []byte("tail"), false)
	body := b.Bytes()
	return append([]byte(nil), body...)
}

func checkRoundTrip(t testing.TB, pieces [][]byte) {
	t.Helper()
	body := buildLines(t, pieces)
	recs, err := DecodeMessage(body)
	if err != nil {
		t.Fatalf("DecodeMessage: %v\n%s", err, body)
	}
	if len(recs) != 4 || recs[1].Type != TypeOutput || recs[3].Output.Lines[0].Text != "tail" {
		t.Fatalf("records: %+v", recs)
	}
	lines := recs[1].Output.Lines
	if len(lines) != len(pieces) {
		t.Fatalf("got %d lines, want %d", len(lines), len(pieces))
	}
	for i, l := range lines {
		got, err := l.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pieces[i]) {
			t.Fatalf("line %d: got %q want %q", i, got, pieces[i])
		}
		if l.Cont != (i%3 == 0) || l.Millis != int64(i) {
			t.Fatalf("line %d: cont %v millis %d", i, l.Cont, l.Millis)
		}
	}
}

func TestMessageBuilderRoundTrip(t *testing.T) {
	checkRoundTrip(t, [][]byte{
		[]byte("plain ascii"),
		{},
		[]byte("\x1b[31mred\x1b[0m"),
		[]byte("progress 10%\rprogress 20%\r"),
		{0, 1, 2, 0xff, 0xfe, 'a'},
		[]byte("quote \" backslash \\ tab \t"),
		[]byte("héllo wörld ✓ 😀"),
		[]byte("\xef\xbf\xbe"), // U+FFFE: valid UTF-8 that SQS refuses
		[]byte("\u2028\u2029\x7f"),
		bytes.Repeat([]byte{0}, 100), // escaping would be 6x: goes base64
	})
}

func TestMessageBuilderLen(t *testing.T) {
	var b MessageBuilder
	b.Reset()
	b.BeginOutput(SourceRunner, 1, time.Now())
	b.AppendLine(Stdout, time.Now(), []byte("x"), false)
	want := b.Len()
	m := b.Mark()
	b.AppendLine(Stdout, time.Now(), []byte("more"), false)
	b.Rollback(m)
	if got := len(b.Bytes()); got != want {
		t.Fatalf("Len %d, body %d", want, got)
	}
}

func FuzzMessageBuilder(f *testing.F) {
	f.Add([]byte("hello"), []byte{0xff, 0x1b})
	f.Add([]byte("\r\n\"\\"), []byte("\xef\xbf\xbf"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		checkRoundTrip(t, [][]byte{a, b, append(a, b...)})
	})
}
