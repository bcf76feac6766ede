package protocol

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// MessageBuilder writes a feedback message body by appending, without
// reflection: the runner's hot path. What it produces is exactly what
// [EncodeMessage] would for the same records (modulo JSON escaping choices
// and the x/b64 choice for each line), and [DecodeMessage] accepts it.
//
// Use: Reset, then any mix of AppendRecord and BeginOutput+AppendLine, then
// Bytes. Mark and Rollback undo appends that made the body too large.
type MessageBuilder struct {
	buf      []byte
	records  int
	inOutput bool // an output record's lines array is open
	lines    int  // lines in the open output record
	recTime  time.Time
}

const messageHead = `{"v":1,"records":[`

// Reset starts a new, empty message.
func (b *MessageBuilder) Reset() {
	b.buf = append(b.buf[:0], messageHead...)
	b.records, b.inOutput, b.lines = 0, false, 0
}

// Records is the number of records begun in the message.
func (b *MessageBuilder) Records() int { return b.records }

// Lines is the number of lines in the open output record (0 when none is open).
func (b *MessageBuilder) Lines() int { return b.lines }

// InOutput reports whether an output record is open for AppendLine.
func (b *MessageBuilder) InOutput() bool { return b.inOutput }

// Len is the length the body would have if closed now.
func (b *MessageBuilder) Len() int {
	n := len(b.buf) + 2 // "]}"
	if b.inOutput {
		n += 3 // "]}}"
	}
	return n
}

// Mark is a point to roll back to.
type Mark struct {
	n, records, lines int
	inOutput          bool
	recTime           time.Time
}

// Mark remembers the current state.
func (b *MessageBuilder) Mark() Mark {
	return Mark{n: len(b.buf), records: b.records, lines: b.lines, inOutput: b.inOutput, recTime: b.recTime}
}

// Rollback returns to a state from Mark.
func (b *MessageBuilder) Rollback(m Mark) {
	b.buf = b.buf[:m.n]
	b.records, b.lines, b.inOutput, b.recTime = m.records, m.lines, m.inOutput, m.recTime
}

func (b *MessageBuilder) closeOutput() {
	if b.inOutput {
		b.buf = append(b.buf, "]}}"...)
		b.inOutput = false
		b.lines = 0
	}
}

func (b *MessageBuilder) comma() {
	if b.records > 0 {
		b.buf = append(b.buf, ',')
	}
}

// AppendRecord appends a whole record (any type) with encoding/json. It is
// for the rare records (started, heartbeat, exit); output lines go through
// BeginOutput and AppendLine.
func (b *MessageBuilder) AppendRecord(r *Record) error {
	js, err := marshal(r)
	if err != nil {
		return err
	}
	b.closeOutput()
	b.comma()
	b.buf = append(b.buf, js...)
	b.records++
	return nil
}

// BeginOutput opens an output record with sequence number seq from src at
// time t; lines follow with AppendLine.
func (b *MessageBuilder) BeginOutput(src Source, seq uint64, t time.Time) {
	b.closeOutput()
	b.comma()
	b.buf = append(b.buf, `{"type":"output","src":`...)
	b.buf = appendString(b.buf, string(src))
	b.buf = append(b.buf, `,"seq":`...)
	b.buf = strconv.AppendUint(b.buf, seq, 10)
	b.buf = append(b.buf, `,"t":"`...)
	b.buf = t.UTC().AppendFormat(b.buf, time.RFC3339Nano)
	b.buf = append(b.buf, `","output":{"lines":[`...)
	b.records++
	b.inOutput = true
	b.lines = 0
	b.recTime = t
}

// RecordTime is the time of the open output record.
func (b *MessageBuilder) RecordTime() time.Time { return b.recTime }

// AppendLine appends one piece of output to the open output record. at is
// when it was read (stored as milliseconds after the record's time); p is
// carried byte-exact, as JSON text when that is SQS-safe and no larger than
// base64, else as base64.
func (b *MessageBuilder) AppendLine(s Stream, at time.Time, p []byte, cont bool) {
	if b.lines > 0 {
		b.buf = append(b.buf, ',')
	}
	b.buf = append(b.buf, `{"s":"`...)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, `","d":`...)
	d := at.Sub(b.recTime).Milliseconds()
	if d < 0 {
		d = 0
	}
	b.buf = strconv.AppendInt(b.buf, d, 10)
	if len(p) > 0 {
		if escaped, ok := textLen(p); ok && escaped <= base64.StdEncoding.EncodedLen(len(p)) {
			b.buf = append(b.buf, `,"x":"`...)
			b.buf = appendEscaped(b.buf, p)
		} else {
			b.buf = append(b.buf, `,"b":"`...)
			b.buf = base64.StdEncoding.AppendEncode(b.buf, p)
		}
		b.buf = append(b.buf, '"')
	}
	if cont {
		b.buf = append(b.buf, `,"c":true`...)
	}
	b.buf = append(b.buf, '}')
	b.lines++
}

// Bytes closes the message and returns its body. The slice is reused by the
// next Reset.
func (b *MessageBuilder) Bytes() []byte {
	b.closeOutput()
	b.buf = append(b.buf, "]}"...)
	return b.buf
}

// safeASCII[c] is true for ASCII bytes that go into a JSON string as is.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// textLen returns the length of p as escaped JSON string content, and false
// when p cannot travel as text (invalid UTF-8, U+FFFE, U+FFFF).
func textLen(p []byte) (int, bool) {
	n := len(p)
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if !safeASCII[c] {
				switch c {
				case '"', '\\', '\n', '\r', '\t':
					n++
				default:
					n += 5 // \u00XX
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if (r == utf8.RuneError && size == 1) || r == 0xFFFE || r == 0xFFFF {
			return 0, false
		}
		i += size
	}
	return n, true
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends p (valid, SQS-safe UTF-8) as JSON string content.
func appendEscaped(dst, p []byte) []byte {
	start := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c >= utf8.RuneSelf || safeASCII[c] {
			continue
		}
		dst = append(dst, p[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	return append(dst, p[start:]...)
}

func appendString(dst []byte, s string) []byte {
	js, _ := json.Marshal(s)
	return append(dst, js...)
}
