package trigger

import (
	"bytes"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// TestWriteLineFastPathPrintsWhatCleaningWould: writeLine's fast path
// (writePlainLine) takes the plain pieces only, and the output of a mix of
// pieces, with and without colour and timestamps, is byte for byte what the
// cleaning path alone writes (cleanLine).
func TestWriteLineFastPathPrintsWhatCleaningWould(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	pieces := []struct {
		s    protocol.Stream
		text string
		cont bool
	}{
		{protocol.Stdout, "plain", false},
		{protocol.Stdout, "é ✓ ascii", false},
		{protocol.Stdout, "dash – has a 0x80 byte", false},
		{protocol.Stderr, "\x1b[31mred\x1b[0m", false},
		{protocol.Stdout, "open \x1b[3", true}, // the carry holds "\x1b[3"
		{protocol.Stdout, "2mgreen", false},    // not plain: the carry is not empty
		{protocol.Stdout, "after", false},
		{protocol.Stderr, "\u0085C1 \x1b]0;title\x07", false},
		{protocol.Stdout, "continued ", true},
		{protocol.Stdout, "end", false},
		{protocol.Stderr, "", false},
		{protocol.Stdout, "\xff not utf-8", false}, // travels as base64
	}
	var recLines []protocol.Line
	for i, p := range pieces {
		text, b64 := protocol.EncodeText([]byte(p.text))
		recLines = append(recLines, protocol.Line{Stream: p.s, Millis: int64(i), Text: text, B64: b64, Cont: p.cont})
	}
	rec := protocol.Record{Type: protocol.TypeOutput, Src: protocol.SourceRunner, Seq: 1, Time: t0, Output: &protocol.Output{Lines: recLines}}
	for _, color := range []bool{false, true} {
		for _, ts := range []bool{false, true} {
			var out, errb, wantOut, wantErr bytes.Buffer
			o := newOrderedOutput(&out, &errb)
			atStart := map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}
			refStart := map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}
			var carry, refCarry escapeCarry
			for _, l := range recLines {
				if err := writeLine(l, rec, o.stdout(), o.stderr(), atStart, &carry, color, ts); err != nil {
					t.Fatal(err)
				}
				w := &wantOut
				if l.Stream == protocol.Stderr {
					w = &wantErr
				}
				b, err := cleanLine(l, rec, refStart, &refCarry, color, ts)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(b)
			}
			if err := o.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != wantOut.String() || errb.String() != wantErr.String() {
				t.Errorf("colour %v, timestamps %v:\nstdout %q\n  want %q\nstderr %q\n  want %q", color, ts, out.String(), wantOut.String(), errb.String(), wantErr.String())
			}
		}
	}
	for s, want := range map[string]bool{"": true, "plain é ü": true, "✓ has 0x9c": false, "–": false, "\x1b[0m": false, "\u0085": false, "\x9b": false, "\t\r\b": true} {
		if plainText(s) != want {
			t.Errorf("plainText(%q) = %v, want %v", s, !want, want)
		}
	}
}
