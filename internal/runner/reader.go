package runner

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// piece is one Line to be: data[off:end] of its chunk, and the same bytes
// encoded once (protocol.AppendPiece) as enc[eoff:eend], which the queue's
// messages and the run log both copy; cont when no newline follows it.
type piece struct {
	off, end   int
	eoff, eend int
	cont       bool
}

// chunk is what one read of a job pipe produced: redacted pieces ready to
// send, in order, all stamped with the time of the read.
type chunk struct {
	stream protocol.Stream
	at     time.Time
	data   []byte // the redacted bytes
	enc    []byte // the pieces encoded
	pieces []piece
	lines  int64 // complete lines (and final unterminated ones) ended in this chunk
	bytes  int64 // raw bytes the job wrote, before redaction
}

// add adds p, redacted, as a piece.
func (c *chunk) add(p []byte, cont bool, red *Redactor, spans *[]span) {
	off := len(c.data)
	if red != nil {
		*spans = red.Find(p, *spans)
		c.data = Apply(c.data, p, *spans)
	} else {
		c.data = append(c.data, p...)
	}
	c.push(off, cont)
}

// push makes data[off:] (redacted already) the next piece and encodes it.
func (c *chunk) push(off int, cont bool) {
	if c.enc == nil {
		// Text grows by its escapes and the field's 7 bytes a piece: about
		// 10 % for typical lines; base64 by a third (append grows it).
		c.enc = make([]byte, 0, cap(c.data)+cap(c.data)/8+64)
	}
	eoff := len(c.enc)
	c.enc = protocol.AppendPiece(c.enc, c.data[off:])
	c.pieces = append(c.pieces, piece{off: off, end: len(c.data), eoff: eoff, eend: len(c.enc), cont: cont})
}

// lineReader reads one of the job's pipes, splits what it reads into lines
// and pieces of at most maxPiece bytes, redacts them, tees the bytes to the
// runner's own stream, and sends chunks to out. A partial line waits at most
// flushDelay for its end, then goes out as a continued piece (progress bars).
type lineReader struct {
	f          *os.File
	stream     protocol.Stream
	out        chan<- item
	tee        io.Writer // nil: no local copy
	teeMasked  bool      // tee the redacted text instead of the raw bytes
	red        *Redactor
	readSize   int
	maxPiece   int
	flushDelay time.Duration

	mu      sync.Mutex
	stopped bool
	teeErr  error

	// After stop: the reader takes what the pipe holds, without waiting for
	// more, then ends. drainLeft bounds what it takes.
	draining  bool
	drainLeft int
	// open: the last piece sent did not end its line (a long line's piece,
	// or a partial line sent after flushDelay), so the stream's end ends a
	// line even when nothing is pending.
	open bool
}

// maxDrainBytes bounds what a stopped reader still takes from its pipe: what
// a pipe can hold (64 KiB by default, at most 1 MiB, fs.pipe-max-size,
// without CAP_SYS_RESOURCE), so that a writer that escaped the job's process
// group cannot keep it reading.
const maxDrainBytes = 1 << 20

// stop makes run end soon, as if the pipe had ended (used when the job's
// process group is gone but something still holds the pipe open). What the
// pipe already holds is still read: the job wrote it before it exited, and
// the reader may only have been slow to get to it (backpressure from the
// queue).
func (r *lineReader) stop() {
	r.mu.Lock()
	r.stopped = true
	_ = r.f.SetReadDeadline(time.Unix(1, 0))
	r.mu.Unlock()
}

// setDeadline sets the read deadline unless stop was called.
func (r *lineReader) setDeadline(t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	_ = r.f.SetReadDeadline(t)
	return true
}

func (r *lineReader) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

func (r *lineReader) run() {
	defer r.f.Close()
	pending := make([]byte, 0, r.maxPiece+r.readSize)
	var partialSince time.Time // when the partial line in pending began
	deadlineSet := false
	var spans []span
	for {
		switch {
		case len(pending) > 0:
			// Wait for the rest of the line until flushDelay after it began;
			// but always try at least one more read, in case the reader was
			// held up (backpressure) while the rest arrived.
			dl := partialSince.Add(r.flushDelay)
			if soon := time.Now().Add(time.Millisecond); dl.Before(soon) {
				dl = soon
			}
			deadlineSet = r.setDeadline(dl)
		case deadlineSet:
			r.setDeadline(time.Time{})
			deadlineSet = false
		}
		if cap(pending)-len(pending) < r.readSize {
			pending = growBytes(pending, r.readSize)
		}
		n, err := r.read(pending[len(pending):cap(pending)])
		at := time.Now()
		var c *chunk
		if n > 0 {
			old := len(pending)
			pending = pending[:old+n]
			if r.tee != nil && !r.teeMasked {
				r.teeWrite(pending[old:])
			}
			if old == 0 {
				partialSince = at
			}
			c = &chunk{stream: r.stream, at: at, bytes: int64(n), data: make([]byte, 0, n+64)}
			pending = r.split(c, pending, old, &spans)
			if len(pending) > 0 && len(pending) != old+n {
				partialSince = at // a new partial line started in this read
			}
		}
		if err != nil && !r.draining && errors.Is(err, os.ErrDeadlineExceeded) && r.isStopped() {
			// Stopped: from now on read only what the pipe holds.
			r.draining, r.drainLeft = true, maxDrainBytes
			_ = r.f.SetReadDeadline(time.Time{})
			r.emit(c)
			continue
		}
		if err != nil {
			timedOut := errors.Is(err, os.ErrDeadlineExceeded) && !r.isStopped()
			if len(pending) > 0 {
				if c == nil {
					c = &chunk{stream: r.stream, at: at, data: make([]byte, 0, len(pending)+64)}
				}
				c.add(pending, true, r.red, &spans)
				if !timedOut {
					c.lines++ // the stream ends without a newline: still a line
				}
				pending = pending[:0]
			} else if !timedOut && r.lineOpen(c) {
				// The stream ends a line whose last piece already went.
				if c == nil {
					c = &chunk{stream: r.stream, at: at}
				}
				c.lines++
			}
			r.emit(c)
			if timedOut {
				continue
			}
			return
		}
		r.emit(c)
	}
}

// lineOpen reports whether the stream's last piece so far, in c or sent
// before it, did not end its line.
func (r *lineReader) lineOpen(c *chunk) bool {
	if c != nil && len(c.pieces) > 0 {
		return c.pieces[len(c.pieces)-1].cont
	}
	return r.open
}

// read reads the pipe; once draining, it returns what the pipe holds now and
// io.EOF when it holds nothing (or drainLeft is used up), never waiting.
func (r *lineReader) read(p []byte) (int, error) {
	if !r.draining {
		return r.f.Read(p)
	}
	if r.drainLeft <= 0 {
		return 0, io.EOF
	}
	rc, err := r.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	p = p[:min(len(p), r.drainLeft)]
	var n int
	var rerr error
	// The pipe is non-blocking (os.Pipe); returning true never waits.
	if err := rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				return true
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == syscall.EAGAIN:
		return 0, io.EOF
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	r.drainLeft -= n
	return n, nil
}

func growBytes(b []byte, n int) []byte {
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

func (r *lineReader) emit(c *chunk) {
	if c == nil || (len(c.pieces) == 0 && c.bytes == 0 && c.lines == 0) {
		return
	}
	if len(c.pieces) > 0 {
		r.open = c.pieces[len(c.pieces)-1].cont
	}
	if r.tee != nil && r.teeMasked {
		var b []byte
		for _, p := range c.pieces {
			b = append(b, c.data[p.off:p.end]...)
			if !p.cont {
				b = append(b, '\n')
			}
		}
		r.teeWrite(b)
	}
	r.out <- item{chunk: c}
}

func (r *lineReader) teeWrite(b []byte) {
	if r.teeErr != nil || len(b) == 0 {
		return
	}
	if _, err := r.tee.Write(b); err != nil {
		r.teeErr = err // the local copy is best effort; the queue copy goes on
	}
}

// split moves complete lines (and pieces of over-long lines) from pending
// into c, scanning for newlines from index from. It returns what is left:
// the start of a line, shorter than maxPiece.
func (r *lineReader) split(c *chunk, pending []byte, from int, spans *[]span) []byte {
	start := 0
	for {
		i := bytes.IndexByte(pending[from:], '\n')
		if i < 0 {
			break
		}
		nl := from + i
		line := r.splitLong(c, pending[start:nl], spans)
		c.add(line, false, r.red, spans)
		c.lines++
		start, from = nl+1, nl+1
	}
	rest := r.splitLong(c, pending[start:], spans)
	return append(pending[:0], rest...) // copy down (overlapping copy is safe)
}

// splitLong emits leading pieces of p while it is at least maxPiece long and
// returns the remainder. Each cut keeps back enough bytes that a secret
// crossing it is still seen whole in the next piece, never cuts a match, and
// does not split a UTF-8 character.
func (r *lineReader) splitLong(c *chunk, p []byte, spans *[]span) []byte {
	hold := 0
	if r.red != nil {
		hold = r.red.MaxMatch()
	}
	for len(p) >= r.maxPiece {
		cut := len(p) - hold
		if cut > r.maxPiece {
			cut = r.maxPiece
		}
		var found []span
		if r.red != nil {
			*spans = r.red.Find(p[:min(len(p), cut+hold)], *spans)
			found = *spans
			for _, sp := range found {
				if sp.s < cut && cut < sp.e {
					cut = sp.s
				}
			}
		}
		for k := 0; k < 3 && cut > 1 && cut < len(p) && !utf8.RuneStart(p[cut]); k++ {
			cut--
		}
		if cut <= 0 {
			cut = r.maxPiece
		}
		off := len(c.data)
		prev := 0
		for _, sp := range found {
			if sp.e > cut {
				break
			}
			c.data = append(c.data, p[prev:sp.s]...)
			c.data = append(c.data, Mask...)
			prev = sp.e
		}
		c.data = append(c.data, p[prev:cut]...)
		c.push(off, true)
		p = p[cut:]
	}
	return p
}
