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
//
// The pieces are not encoded here: the readers encoded each piece once
// (chunk.push), and the run log and the queue's messages both copy that
// form. Only a piece over protocol.RunLogMaxPiece (a line longer than
// 4 KiB) is cut further and its parts encoded again here. One chunk is one
// Write, of as many run log lines as it needs.
type runLog struct {
	w      io.Writer
	runID  string
	prefix []byte // protocol.RunLogPrefix(runID)
	n      uint64
	buf    []byte
	part   []byte // a part of a long piece, encoded
	open   bool   // a line of pieces is open in buf
	size   int    // bytes of pieces in the open line
	err    error
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

// piece adds one encoded piece to buf, closing the open line first when
// the piece would take it past maxLinePayload.
func (l *runLog) piece(s protocol.Stream, enc []byte, cont bool) {
	n := protocol.RunLogPieceLen(s, enc, cont)
	if l.open && l.size+n > maxLinePayload {
		l.buf = protocol.AppendRunLogEnd(l.buf)
		l.open = false
	}
	if !l.open {
		if l.prefix == nil {
			l.prefix = protocol.RunLogPrefix(l.runID)
		}
		l.n++
		l.buf = protocol.AppendRunLogHead(l.buf, l.prefix, l.n)
		l.open, l.size = true, 0
	}
	l.buf = protocol.AppendRunLogPiece(l.buf, l.size == 0, s, enc, cont)
	l.size += n
}

// chunk logs the pieces of one read, in lines of a bounded size.
func (l *runLog) chunk(c *chunk) {
	l.lines += c.lines
	l.bytes += c.bytes
	if l.err != nil || len(c.pieces) == 0 {
		return
	}
	l.buf = l.buf[:0]
	for _, p := range c.pieces {
		if p.end-p.off <= protocol.RunLogMaxPiece {
			l.piece(c.stream, c.enc[p.eoff:p.eend], p.cont)
			continue
		}
		parts := protocol.SplitPiece(c.data[p.off:p.end])
		for i, part := range parts {
			l.part = protocol.AppendPiece(l.part[:0], part)
			l.piece(c.stream, l.part, p.cont || i < len(parts)-1)
		}
	}
	l.buf = protocol.AppendRunLogEnd(l.buf)
	l.open = false
	_, l.err = l.w.Write(l.buf)
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
// and including the exit. A chunk goes to out before it is logged, so that
// the batcher encodes the next message while the log is written; the exit
// goes to out after it is logged (Run waits for the batcher, so the run log
// is complete when Run returns).
func teeRunLog(l *runLog, in <-chan item, out chan<- item) {
	for it := range in {
		if it.exit != nil {
			l.exit(*it.exit)
			out <- it
			return
		}
		out <- it
		if it.chunk != nil {
			l.chunk(it.chunk)
		}
	}
}
