package localbroker

import (
	"bytes"
	"io"
	"sync"
)

// lineWriter is one of the runner's two output pipes into a sink the two
// share (the task's log file, the run log shipper): it passes whole lines
// only, under a lock shared with the other pipe, as a log driver keeps
// stdout and stderr lines apart. The runner writes its run log to stdout in
// pieces that do not end at a line's end; without this a stderr line (its
// "run finished") landed inside a stdout line of the file.
type lineWriter struct {
	mu      *sync.Mutex
	w       io.Writer
	pending []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, p...)
	i := bytes.LastIndexByte(l.pending, '\n')
	if i < 0 && len(l.pending) > maxPendingLine {
		i = len(l.pending) - 1 // a line this long is cut, as a log driver cuts it
	}
	if i < 0 {
		return len(p), nil
	}
	_, err := l.w.Write(l.pending[:i+1])
	l.pending = append(l.pending[:0], l.pending[i+1:]...)
	return len(p), err
}

// maxPendingLine bounds what a lineWriter holds of a line not ended yet:
// CloudWatch Logs' largest event (256 KiB with its 26 bytes of overhead).
const maxPendingLine = maxEventBytes

// Close writes a last line that has no newline.
func (l *lineWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil
	}
	_, err := l.w.Write(l.pending)
	l.pending = nil
	return err
}
