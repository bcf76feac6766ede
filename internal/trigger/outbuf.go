package trigger

import (
	"io"
	"sync"
)

// orderedOutput buffers what deploy-trigger writes to stdout and stderr, and
// keeps the order of the two: a write to one stream first flushes what is
// pending for the other, so a console that shows both (Jenkins, 2>&1) sees
// the job's lines interleaved exactly as they were written. Runs of lines on
// one stream go out in one write(2) instead of one each, which is most of
// the trigger's cost on a busy job. The tail loop flushes after every event
// and tick, so nothing waits longer than the loop's tick; reading stdin
// (prompts) flushes first, as C's stdio does.
type orderedOutput struct {
	mu  sync.Mutex
	dst [2]io.Writer
	cur int
	buf []byte
	err [2]error // per stream: a failed stdout does not silence stderr
}

// maxPendingOutput bounds the buffer: past it, a write flushes at once.
const maxPendingOutput = 256 << 10

func newOrderedOutput(stdout, stderr io.Writer) *orderedOutput {
	return &orderedOutput{dst: [2]io.Writer{stdout, stderr}}
}

type streamWriter struct {
	o *orderedOutput
	i int
}

func (w streamWriter) Write(p []byte) (int, error) { return write(w.o, w.i, p) }

// WriteString writes s without converting it to a []byte first.
func (w streamWriter) WriteString(s string) (int, error) { return write(w.o, w.i, s) }

func (o *orderedOutput) stdout() io.Writer { return streamWriter{o, 0} }
func (o *orderedOutput) stderr() io.Writer { return streamWriter{o, 1} }

func write[T string | []byte](o *orderedOutput, i int, p T) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err[i] != nil {
		return 0, o.err[i]
	}
	if len(o.buf) > 0 && o.cur != i {
		_ = o.flushLocked() // the other stream's failure is reported on its own writes
	}
	o.cur = i
	o.buf = append(o.buf, p...)
	if len(o.buf) >= maxPendingOutput {
		if err := o.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes out what is pending; it returns a write error of either
// stream, the first one seen.
func (o *orderedOutput) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.flushLocked()
	if o.err[0] != nil {
		return o.err[0]
	}
	return o.err[1]
}

// flushLocked writes the pending bytes to their stream; bytes for a stream
// that already failed are dropped.
func (o *orderedOutput) flushLocked() error {
	if len(o.buf) == 0 {
		return o.err[o.cur]
	}
	if o.err[o.cur] == nil {
		_, o.err[o.cur] = o.dst[o.cur].Write(o.buf)
	}
	o.buf = o.buf[:0]
	if cap(o.buf) > 4*maxPendingOutput {
		o.buf = nil
	}
	return o.err[o.cur]
}

// flushingReader flushes the output before each read, so a prompt is on the
// screen before deploy-trigger waits for the answer.
type flushingReader struct {
	r io.Reader
	o *orderedOutput
}

func (f flushingReader) Read(p []byte) (int, error) {
	_ = f.o.Flush()
	return f.r.Read(p)
}
