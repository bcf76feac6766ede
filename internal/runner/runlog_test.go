package runner

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// readRunLog decodes a run log as deploy-trigger logs does: the combined
// output as "out:"/"err:" prefixed pieces in order, and the exit.
func readRunLog(t *testing.T, log []byte, runID string) (order []string, out, errOut []byte, exit *protocol.Exit) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, protocol.RunLogMaxLine+1)
	var n uint64
	for sc.Scan() {
		if len(sc.Bytes()) > protocol.RunLogMaxLine {
			t.Fatalf("run log line of %d bytes", len(sc.Bytes()))
		}
		l, ok, err := protocol.DecodeRunLogLine(sc.Bytes(), runID)
		if err != nil || !ok {
			t.Fatalf("line %q: ok %v, %v", sc.Text(), ok, err)
		}
		if n++; l.N != n {
			t.Fatalf("line %d numbered %d", n, l.N)
		}
		if exit != nil {
			t.Fatalf("a line after the exit: %q", sc.Text())
		}
		exit = l.Exit
		for _, ln := range l.Lines {
			b, _ := ln.Bytes()
			if ln.Stream == protocol.Stdout {
				out = append(out, b...)
			} else {
				errOut = append(errOut, b...)
			}
			if !ln.Cont {
				if ln.Stream == protocol.Stdout {
					out = append(out, '\n')
				} else {
					errOut = append(errOut, '\n')
				}
			}
			order = append(order, string(ln.Stream))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return order, out, errOut, exit
}

// With the records log format the runner's stdout is the run log: the same
// (redacted) bytes as the queue got, on both streams, and the exit with its
// outputs; nothing raw.
func TestRunLogHoldsWhatTheQueueGot(t *testing.T) {
	for _, mode := range []string{"fixture", "outputs"} {
		t.Run(mode, func(t *testing.T) {
			var stdout, stderr testutil.SyncBuffer
			args := []string{}
			if mode == "outputs" {
				args = []string{"a=1\nbig=" + strings.Repeat("x", 9000) + "\n"}
			}
			_, r := runJob(t, func(c *Config) {
				c.LogFormat = protocol.LogFormatRecords
				c.Stdout, c.Stderr = &stdout, &stderr
				c.Secrets = []string{"err line"}
			}, mode, args...)
			if stderr.String() != "" {
				t.Errorf("raw stderr copy: %q", stderr.String())
			}
			_, out, errOut, exit := readRunLog(t, []byte(stdout.String()), "01JDTESTRUN0000000000000000")
			qOut, qErr, _ := r.streams(t)
			// The queue's reassembly ends every stream with a newline.
			if !bytes.Equal(out, qOut) && !bytes.Equal(append(out, '\n'), qOut) {
				t.Errorf("stdout differs:\nlog   %q\nqueue %q", out, qOut)
			}
			if !bytes.Equal(errOut, qErr) && !bytes.Equal(append(errOut, '\n'), qErr) {
				t.Errorf("stderr differs:\nlog   %q\nqueue %q", errOut, qErr)
			}
			qx := r.exit()
			if exit == nil || qx == nil {
				t.Fatalf("exit: log %v, queue %v", exit, qx)
			}
			if exit.Code != qx.Code || exit.Lines != qx.Lines || exit.Bytes != qx.Bytes || !reflect.DeepEqual(exit.Outputs, qx.Outputs) {
				t.Errorf("exit: log %+v\nqueue %+v", exit, qx)
			}
			if mode == "fixture" && strings.Contains(string(errOut), "err line") {
				t.Error("the run log is not redacted")
			}
		})
	}
}

func TestRunLogLinesStayShort(t *testing.T) {
	var b bytes.Buffer
	l := &runLog{w: &b, runID: "R"}
	data := bytes.Repeat([]byte("\x01\xff"), 40<<10)
	c := &chunk{stream: protocol.Stdout, bytes: int64(len(data))}
	c.add(data, true, nil, nil)
	l.chunk(c)
	big := []protocol.JobOutput{}
	for i := range 4 {
		big = append(big, protocol.JobOutput{Name: fmt.Sprintf("o%d", i), Value: strings.Repeat("y", 16<<10)})
	}
	l.exit(protocol.Exit{Outputs: big})
	var got []byte
	for i, line := range bytes.SplitAfter(b.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if len(line) > protocol.RunLogMaxLine {
			t.Fatalf("line %d has %d bytes", i, len(line))
		}
		rl, ok, err := protocol.DecodeRunLogLine(line, "R")
		if !ok || err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		for _, ln := range rl.Lines {
			p, _ := ln.Bytes()
			got = append(got, p...)
		}
		if rl.Exit != nil && (!rl.OutputsOmitted || rl.Exit.Outputs != nil || rl.Exit.Bytes != int64(len(data))) {
			t.Errorf("exit line %+v", rl)
		}
	}
	if !bytes.Equal(got, data) {
		t.Error("the pieces do not give back the bytes")
	}
}

// checkEncoded checks that each piece of c carries its encoded form: the
// redacted bytes as protocol.AppendPiece writes them, one after the other.
func checkEncoded(t testing.TB, c *chunk) {
	t.Helper()
	next := 0
	for i, p := range c.pieces {
		if p.eoff != next {
			t.Fatalf("piece %d is encoded at %d, want %d", i, p.eoff, next)
		}
		if want := protocol.AppendPiece(nil, c.data[p.off:p.end]); !bytes.Equal(c.enc[p.eoff:p.eend], want) {
			t.Fatalf("piece %d %q is encoded as %q, want %q", i, c.data[p.off:p.end], c.enc[p.eoff:p.eend], want)
		}
		next = p.eend
	}
}

// benchLineChunk is a read's worth of the bench's 100-byte lines.
func benchLineChunk(n int) *chunk {
	c := &chunk{stream: protocol.Stdout}
	for i := range n {
		c.add(fmt.Appendf(nil, "%09d %s", i, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmn"), false, nil, nil)
		c.lines++
		c.bytes += 100
	}
	return c
}

// The run log copies the pieces the readers encoded: logging a chunk of
// short pieces encodes nothing and allocates nothing once its buffer has
// grown. (It encoded every piece a second time with encoding/json, which
// allocated for each piece and line: the runner's CPU per byte doubled and
// the end-to-end rate fell to 0.56 of the raw SQS rate.)
func TestRunLogCopiesEncodedPieces(t *testing.T) {
	c := benchLineChunk(650) // 65 KB: a pipe read's worth, several run log lines
	checkEncoded(t, c)
	l := &runLog{w: io.Discard, runID: "01JDTESTRUN0000000000000000"}
	l.chunk(c)
	if allocs := testing.AllocsPerRun(20, func() { l.chunk(c) }); allocs != 0 {
		t.Errorf("logging a chunk of %d short pieces allocates %.0f times; want 0 (the pieces are encoded already)", len(c.pieces), allocs)
	}
}

// writeCounter counts Write calls.
type writeCounter struct {
	bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// A chunk goes to stdout in one Write, however many run log lines it
// makes, and the lines are numbered on across chunks.
func TestRunLogOneWritePerChunk(t *testing.T) {
	var w writeCounter
	l := &runLog{w: &w, runID: "R"}
	c := benchLineChunk(650)
	l.chunk(c)
	l.chunk(c)
	l.exit(protocol.Exit{Reason: protocol.ReasonCompleted})
	if w.writes != 3 {
		t.Errorf("%d writes for two chunks and the exit; want 3", w.writes)
	}
	_, out, _, exit := readRunLog(t, w.Bytes(), "R")
	if lines := bytes.Count(w.Bytes(), []byte("\n")); lines < 10 {
		t.Errorf("two 65 KB chunks in %d run log lines; want them cut at about 8 KiB", lines)
	}
	want := append(join(chunkPieces(c)), join(chunkPieces(c))...)
	if !bytes.Equal(out, want) || exit == nil || exit.Lines != 1300 || exit.Bytes != 130000 {
		t.Errorf("the log holds %d bytes (want %d), exit %+v", len(out), len(want), exit)
	}
}

func chunkPieces(c *chunk) []piece2 {
	var out []piece2
	for _, p := range c.pieces {
		out = append(out, piece2{c.data[p.off:p.end], p.cont})
	}
	return out
}

// A piece longer than protocol.RunLogMaxPiece is cut for the run log only:
// the queue keeps it whole; the log's parts give back the same bytes, text
// stays text, and every line stays under protocol.RunLogMaxLine.
func TestRunLogCutsLongPieces(t *testing.T) {
	c := &chunk{stream: protocol.Stderr}
	long := bytes.Repeat([]byte("héllo wörld "), 2000) // 28 KB of UTF-8 text
	c.add([]byte("before"), false, nil, nil)
	c.add(long, true, nil, nil)
	c.add([]byte("after"), false, nil, nil)
	checkEncoded(t, c)
	var w bytes.Buffer
	l := &runLog{w: &w, runID: "R"}
	l.chunk(c)
	var got []byte
	pieces := 0
	for _, line := range bytes.SplitAfter(w.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if len(line) > protocol.RunLogMaxLine {
			t.Fatalf("a line of %d bytes", len(line))
		}
		rl := decodeLine(t, line, "R")
		for _, ln := range rl.Lines {
			if ln.Text == "" {
				t.Fatalf("a part of the text went as base64: %+v", ln)
			}
			b, _ := ln.Bytes()
			got = append(got, b...)
			if !ln.Cont {
				got = append(got, '\n')
			}
			pieces++
		}
	}
	want := "before\n" + string(long) + "after\n"
	if string(got) != want || pieces < 2+len(long)/protocol.RunLogMaxPiece {
		t.Errorf("%d pieces giving %d bytes; want %d bytes in at least %d pieces", pieces, len(got), len(want), 2+len(long)/protocol.RunLogMaxPiece)
	}
}

func decodeLine(t *testing.T, line []byte, runID string) protocol.RunLogLine {
	t.Helper()
	rl, ok, err := protocol.DecodeRunLogLine(line, runID)
	if !ok || err != nil {
		t.Fatalf("line %q: ok %v, %v", line, ok, err)
	}
	return rl
}
