package protocol

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// encodePieces are pieces with every kind of content the encoders treat
// differently: plain text, JSON escapes, control characters and ANSI
// colour, characters encoding/json escapes and AppendPiece does not
// (U+2028, <, >, &), invalid UTF-8, U+FFFE, empty.
var encodePieces = [][]byte{
	[]byte("deploying web-frontend to prod-eu-1, revision 42"),
	[]byte("quote \" backslash \\ tab \t cr \r"),
	[]byte("\x1b[32m+\x1b[0m resource \"aws_s3_object\""),
	[]byte("a\u2028b\u2029c <html> & more"),
	[]byte("<<<<<<"),
	[]byte("\x00\x01\x02\x03"),
	[]byte("\xff\xfe binary"),
	[]byte("\xef\xbf\xbe U+FFFE"),
	[]byte("naïve café ✓"),
	{},
}

// The run log line written from encoded pieces decodes, as readers decode
// it, to the same line as EncodeRunLogLine's form (the reflection encoder
// runners wrote before): same run, number, streams, bytes and cont.
func TestAppendRunLogMatchesEncodeRunLogLine(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 1))
	pieces := append([][]byte{}, encodePieces...)
	for range 50 {
		p := make([]byte, r.IntN(300))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		pieces = append(pieces, p)
	}
	runID := "01JDTESTRUN0000000000000000"
	prefix := RunLogPrefix(runID)
	var fast []byte
	want := RunLogLine{Run: runID, N: 3}
	fast = AppendRunLogHead(fast, prefix, 3)
	for i, p := range pieces {
		s, cont := Stdout, i%3 == 0
		if i%2 == 1 {
			s = Stderr
		}
		enc := AppendPiece(nil, p)
		before := len(fast)
		fast = AppendRunLogPiece(fast, i == 0, s, enc, cont)
		n := RunLogPieceLen(s, enc, cont)
		if i == 0 {
			n-- // no comma before the first
		}
		if got := len(fast) - before; got != n {
			t.Fatalf("piece %d: appended %d bytes, RunLogPieceLen says %d", i, got, n)
		}
		want.Lines = append(want.Lines, RunLogLineFor(s, p, cont))
	}
	fast = AppendRunLogEnd(fast)
	if bytes.Contains(fast, []byte(`"d":`)) {
		t.Errorf("a piece carries \"d\" (always 0 in the run log): %s", fast)
	}
	slow := EncodeRunLogLine(nil, &want)
	if !bytes.HasSuffix(fast, []byte("\n")) || bytes.Count(fast, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", fast)
	}
	a := decodeRunLog(t, fast, runID)
	b := decodeRunLog(t, slow, runID)
	if a.Run != b.Run || a.N != b.N || len(a.Lines) != len(b.Lines) || len(a.Lines) != len(pieces) {
		t.Fatalf("fast %+v\nslow %+v", a, b)
	}
	for i := range a.Lines {
		fa, _ := a.Lines[i].Bytes()
		fb, _ := b.Lines[i].Bytes()
		la, lb := a.Lines[i], b.Lines[i]
		if !bytes.Equal(fa, pieces[i]) || !bytes.Equal(fb, pieces[i]) || la.Stream != lb.Stream || la.Cont != lb.Cont || la.Millis != 0 {
			t.Fatalf("piece %d: fast %+v, slow %+v, want %q", i, la, lb, pieces[i])
		}
		// The same choice of text or base64 as the reflection form now.
		if (la.B64 == "") != (lb.B64 == "") {
			t.Fatalf("piece %d: text or base64 differs: fast %+v, slow %+v", i, la, lb)
		}
	}
}

// A line runners wrote before pieces were encoded once (encoding/json,
// which escapes U+2028 and chose base64 for "<<<<<<" because it measured
// the text with HTML escaping) still decodes: readers accept both forms.
func TestDecodeRunLogLineOldForm(t *testing.T) {
	old := "{\"deploy_broker_run\":\"R\",\"n\":7,\"lines\":[{\"s\":\"out\",\"d\":0,\"x\":\"deploying \\u2028 web\\tfrontend to prod-eu-1, \\\"revision\\\" 42 \\\\ ok\"},{\"s\":\"out\",\"d\":0,\"b\":\"PDw8PDw8\",\"c\":true},{\"s\":\"out\",\"d\":0,\"b\":\"//4=\"},{\"s\":\"err\",\"d\":0}]}\n"
	want := [][]byte{[]byte("deploying \u2028 web\tfrontend to prod-eu-1, \"revision\" 42 \\ ok"), []byte("<<<<<<"), []byte("\xff\xfe"), nil}
	prefix := RunLogPrefix("R")
	fast := AppendRunLogHead(nil, prefix, 7)
	for i, p := range want {
		s := Stdout
		if i == 3 {
			s = Stderr
		}
		fast = AppendRunLogPiece(fast, i == 0, s, AppendPiece(nil, p), i == 1)
	}
	fast = AppendRunLogEnd(fast)
	for _, form := range []string{old, string(fast)} {
		l := decodeRunLog(t, []byte(form), "R")
		if l.N != 7 || len(l.Lines) != len(want) || !l.Lines[1].Cont || l.Lines[3].Stream != Stderr {
			t.Fatalf("%q: %+v", form, l)
		}
		for i, ln := range l.Lines {
			b, _ := ln.Bytes()
			if !bytes.Equal(b, want[i]) {
				t.Fatalf("%q: piece %d is %q, want %q", form, i, b, want[i])
			}
		}
	}
}

func decodeRunLog(t *testing.T, b []byte, runID string) RunLogLine {
	t.Helper()
	l, ok, err := DecodeRunLogLine(b, runID)
	if !ok || err != nil {
		t.Fatalf("DecodeRunLogLine(%q): ok %v, %v", b, ok, err)
	}
	return l
}

// AppendEncodedLine with AppendPiece's form writes exactly what AppendLine
// writes, so the queue's messages are unchanged by encoding pieces once.
func TestAppendEncodedLineIsAppendLine(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	var a, b MessageBuilder
	a.Reset()
	b.Reset()
	a.BeginOutput(SourceRunner, 1, t0)
	b.BeginOutput(SourceRunner, 1, t0)
	for i, p := range encodePieces {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		a.AppendLine(Stderr, at, p, i%2 == 0)
		b.AppendEncodedLine(Stderr, at, AppendPiece(nil, p), i%2 == 0)
	}
	plain, encoded := a.Bytes(), b.Bytes()
	if !bytes.Equal(plain, encoded) {
		t.Fatalf("AppendLine %s\nAppendEncodedLine %s", plain, encoded)
	}
	if _, err := DecodeMessage(encoded); err != nil {
		t.Fatal(err)
	}
}
