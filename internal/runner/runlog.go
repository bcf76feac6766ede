package runner

import (
	"encoding/json"
	"io"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// runLog writes the run log (protocol/runlog.go) to the runner's stdout
// when Config.LogFormat is records: every chunk the readers produce, as
// redacted as what goes to the queue and in the same order, then the exit.
// A write error stops the log, never the run.
type runLog struct {
	w     io.Writer
	runID string
	n     uint64
	buf   []byte
	err   error
	// lines and bytes count the job's output, as the batcher does, for the
	// exit line (the batcher sees the exit after this log does).
	lines, bytes int64
}

// maxLinePayload is where a run log line is closed: one more piece (at most
// about 5.5 KiB encoded) keeps it under protocol.RunLogMaxLine.
const maxLinePayload = 8 << 10

func (l *runLog) write(line *protocol.RunLogLine) {
	if l.err != nil {
		return
	}
	l.n++
	line.Run, line.N = l.runID, l.n
	l.buf = protocol.EncodeRunLogLine(l.buf[:0], line)
	_, l.err = l.w.Write(l.buf)
}

// chunk logs the pieces of one read, in lines of a bounded size.
func (l *runLog) chunk(c *chunk) {
	l.lines += c.lines
	l.bytes += c.bytes
	var cur protocol.RunLogLine
	size := 0
	for _, p := range c.pieces {
		parts := protocol.SplitPiece(c.data[p.off:p.end])
		for i, part := range parts {
			ln := protocol.RunLogLineFor(c.stream, part, p.cont || i < len(parts)-1)
			n := len(ln.Text) + len(ln.B64) + 16
			if size > 0 && size+n > maxLinePayload {
				l.write(&cur)
				cur, size = protocol.RunLogLine{}, 0
			}
			cur.Lines = append(cur.Lines, ln)
			size += n
		}
	}
	if len(cur.Lines) > 0 {
		l.write(&cur)
	}
}

// exit logs the exit record; outputs go along when the line stays in bounds.
func (l *runLog) exit(x protocol.Exit) {
	x.Lines, x.Bytes = l.lines, l.bytes
	line := protocol.RunLogLine{Exit: &x}
	if b, err := json.Marshal(x); err != nil || len(b) > protocol.RunLogMaxLine-1024 {
		x.Outputs = nil
		line.OutputsOmitted = true
	}
	l.write(&line)
}

// teeRunLog forwards items from in to out, logging each on the way, up to
// and including the exit.
func teeRunLog(l *runLog, in <-chan item, out chan<- item) {
	for it := range in {
		if it.chunk != nil {
			l.chunk(it.chunk)
		}
		if it.exit != nil {
			l.exit(*it.exit)
		}
		out <- it
		if it.exit != nil {
			return
		}
	}
}
