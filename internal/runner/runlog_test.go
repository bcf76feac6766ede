package runner

import (
	"bufio"
	"bytes"
	"fmt"
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
	l.chunk(&chunk{stream: protocol.Stdout, data: data, pieces: []piece{{0, len(data), true}}, bytes: int64(len(data))})
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
