package runner

import (
	"log/slog"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// MaxBatchEntries is SQS's limit of messages in one SendMessageBatch.
const MaxBatchEntries = 10

// item is what the batcher receives, in order: output chunks, then the exit.
type item struct {
	chunk *chunk
	exit  *protocol.Exit
}

// message is one SQS message body with the sequence number of its first
// record (its deduplication id is DedupID(<run prefix>, first)).
type message struct {
	body  string
	first uint64
	last  uint64
	raw   int  // length of the uncompressed body
	gz    bool // body is the compressed form
}

// request is one SendMessageBatch worth of messages.
type request struct {
	msgs  []message
	bytes int  // sum of the bodies
	final bool // holds the exit record
}

// batcher turns chunks into records and records into requests, and hands a
// request to the sender as soon as the sender is idle: a lone line goes out
// at once, while during a burst the next request fills up while one is in
// flight. When the next request is full, it stops reading its input, so the
// readers block, the job's pipes fill and the job waits (backpressure).
type batcher struct {
	maxRequest int // bytes of bodies per request
	maxMessage int // bytes per message body
	// Compression (see compose.go): off, or bodies of at least compressMin
	// bytes go compressed when that is smaller, and a compressed message
	// holds at most maxRaw bytes of uncompressed body.
	compress    bool
	compressMin int
	maxRaw      int
	heartbeat   time.Duration
	now         func() time.Time
	log         *slog.Logger
	// stalled, when not nil, is called each time the batcher stops taking
	// input to wait for the sender: the current request is full, or it is
	// the last one. Tests use it to pace a slow sender exactly.
	stalled func()

	in    <-chan item
	ready <-chan struct{} // the sender is idle
	work  chan<- *request // to the sender; closed after the final request

	seq   uint64
	lines int64
	bytes int64

	mb       protocol.MessageBuilder
	gz       protocol.MessageCompressor
	msgOpen  bool
	msgFirst uint64
	cur      *request
}

func (b *batcher) limit() int {
	return min(b.maxMessage, b.maxRequest-b.cur.bytes)
}

// closeMsg finishes the open message and adds it to the current request.
func (b *batcher) closeMsg() {
	if !b.msgOpen {
		return
	}
	b.msgOpen = false
	if b.mb.Records() == 0 {
		return
	}
	body, raw, gz := b.finish()
	b.cur.msgs = append(b.cur.msgs, message{body: string(body), first: b.msgFirst, last: b.seq, raw: raw, gz: gz})
	b.cur.bytes += len(body)
}

func (b *batcher) openMsg() bool {
	if b.msgOpen {
		return true
	}
	if len(b.cur.msgs) >= MaxBatchEntries {
		return false
	}
	b.mb.Reset()
	b.gz.Stop()
	b.msgOpen = true
	b.msgFirst = b.seq + 1
	return true
}

// addPiece adds one line piece, encoded by protocol.AppendPiece; false
// means the current request is full.
func (b *batcher) addPiece(s protocol.Stream, at time.Time, enc []byte, cont bool) bool {
	for attempt := 0; attempt < 2; attempt++ {
		if !b.openMsg() {
			return false
		}
		m := b.mb.Mark()
		newRec := !b.mb.InOutput()
		if newRec {
			b.mb.BeginOutput(protocol.SourceRunner, b.seq+1, at)
		}
		b.mb.AppendEncodedLine(s, at, enc, cont)
		if b.fits(m) {
			if newRec {
				b.seq++
			}
			return true
		}
		b.mb.Rollback(m)
		if b.mb.Records() == 0 {
			b.msgOpen = false
			return false // does not fit even in an empty message of what is left
		}
		b.closeMsg()
	}
	return false
}

// addRecord adds a whole record (its Seq is set here); false means the
// current request is full.
func (b *batcher) addRecord(r *protocol.Record) bool {
	for attempt := 0; attempt < 2; attempt++ {
		if !b.openMsg() {
			return false
		}
		m := b.mb.Mark()
		r.Seq = b.seq + 1
		r.Src = protocol.SourceRunner
		if err := b.mb.AppendRecord(r); err != nil {
			b.log.Error("encoding a record failed", "type", r.Type, "err", err)
			return true // cannot happen for our own types; drop rather than spin
		}
		if b.fits(m) {
			b.seq++
			return true
		}
		b.mb.Rollback(m)
		if b.mb.Records() == 0 {
			b.msgOpen = false
			return false
		}
		b.closeMsg()
	}
	return false
}

func (b *batcher) empty() bool {
	return len(b.cur.msgs) == 0 && (!b.msgOpen || b.mb.Records() == 0)
}

// handOff waits until the sender is idle and gives it the current request.
func (b *batcher) handOff(final bool) {
	b.stall()
	<-b.ready
	b.closeMsg()
	b.cur.final = final
	b.work <- b.cur
	b.cur = &request{}
}

func (b *batcher) stall() {
	if b.stalled != nil {
		b.stalled()
	}
}

func (b *batcher) heartbeatRecord() *protocol.Record {
	return &protocol.Record{Type: protocol.TypeHeartbeat, Time: b.now(),
		Heartbeat: &protocol.Heartbeat{Lines: b.lines, Bytes: b.bytes}}
}

// mustAdd adds r, handing off the current request first if it is full.
func (b *batcher) mustAdd(r *protocol.Record) {
	if !b.addRecord(r) {
		b.handOff(false)
		b.addRecord(r)
	}
}

// run batches until the exit item, hands off the final request and closes
// work. started, when not nil, is the first record.
func (b *batcher) run(started *protocol.Started) {
	defer close(b.work)
	b.cur = &request{}
	if started != nil {
		b.mustAdd(&protocol.Record{Type: protocol.TypeStarted, Time: b.now(), Started: started})
	}
	var tick <-chan time.Time
	if b.heartbeat > 0 {
		t := time.NewTicker(b.heartbeat)
		defer t.Stop()
		tick = t.C
	}
	var (
		pend      *chunk // a chunk only partly added: the request was full
		pendIdx   int
		heartbeat bool // a heartbeat is due but the request was full
	)
	for {
		in, ready := b.in, b.ready
		full := pend != nil
		if full {
			in = nil
			b.stall()
		}
		if b.empty() {
			ready = nil
		}
		// Input that is already waiting goes into the current request before
		// the request is handed off (a select with both ready would pick
		// one at random): under a burst a request carries what has been
		// read by the time the sender is free. A lone line still goes at
		// once: nothing waits behind it.
		var it item
		got := false
		if in != nil {
			select {
			case it = <-in:
				got = true
			default:
			}
		}
		if !got {
			select {
			case it = <-in:
				got = true
			case <-ready:
				b.closeMsg()
				b.cur.final = false
				b.work <- b.cur
				b.cur = &request{}
				if heartbeat {
					heartbeat = false
					b.addRecord(b.heartbeatRecord())
				}
			case <-tick:
				if !b.addRecord(b.heartbeatRecord()) {
					heartbeat = true
				}
			}
		}
		if got {
			if it.exit != nil {
				x := *it.exit
				x.Lines, x.Bytes = b.lines, b.bytes
				b.mustAdd(&protocol.Record{Type: protocol.TypeExit, Time: b.now(), Exit: &x})
				b.handOff(true)
				return
			}
			pend, pendIdx = it.chunk, 0
		}
		if pend != nil {
			c := pend
			for pendIdx < len(c.pieces) {
				p := c.pieces[pendIdx]
				if !b.addPiece(c.stream, c.at, c.enc[p.eoff:p.eend], p.cont) {
					break
				}
				pendIdx++
			}
			if pendIdx == len(c.pieces) {
				b.lines += c.lines
				b.bytes += c.bytes
				pend = nil
			}
		}
	}
}
