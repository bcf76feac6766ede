package localbroker

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// The runner's two pipes share the task's log file: pieces of a stdout line
// with a whole stderr line written in between still give whole lines.
func TestLineWriterKeepsTheTwoStreamsLinesWhole(t *testing.T) {
	var file bytes.Buffer
	mu := &sync.Mutex{}
	out, errw := &lineWriter{mu: mu, w: &file}, &lineWriter{mu: mu, w: &file}
	for _, step := range []struct {
		w *lineWriter
		s string
	}{
		{out, `{"n":1,"lines":[{"x":"ab`}, {errw, `{"msg":"run finished"}` + "\n"}, {out, `cd"}]}` + "\n" + `{"n":2,`},
		{errw, "tail without newline"}, {out, `"exit":{}}` + "\n"},
	} {
		if _, err := step.w.Write([]byte(step.s)); err != nil {
			t.Fatal(err)
		}
	}
	out.Close()
	errw.Close()
	want := []string{`{"msg":"run finished"}`, `{"n":1,"lines":[{"x":"abcd"}]}`, `{"n":2,"exit":{}}`, "tail without newline"}
	if got := strings.Split(file.String(), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("file lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A line longer than the bound is written in pieces rather than held.
	file.Reset()
	big := strings.Repeat("x", maxPendingLine+10)
	if _, err := out.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if file.Len() != len(big) || len(out.pending) != 0 {
		t.Errorf("a %d-byte line without newline: %d written, %d held", len(big), file.Len(), len(out.pending))
	}
}
