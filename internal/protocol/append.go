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
// base64, else as base64 (see [AppendPiece]).
func (b *MessageBuilder) AppendLine(s Stream, at time.Time, p []byte, cont bool) {
	b.beginLine(s, at)
	b.buf = AppendPiece(b.buf, p)
	b.endLine(cont)
}

// AppendEncodedLine is AppendLine for a piece already encoded by
// [AppendPiece]: enc is copied as it is, so a caller that writes the same
// piece elsewhere too (the runner's run log) encodes it once.
func (b *MessageBuilder) AppendEncodedLine(s Stream, at time.Time, enc []byte, cont bool) {
	b.beginLine(s, at)
	b.buf = append(b.buf, enc...)
	b.endLine(cont)
}

func (b *MessageBuilder) beginLine(s Stream, at time.Time) {
	if b.lines > 0 {
		b.buf = append(b.buf, ',')
	}
	d := at.Sub(b.recTime).Milliseconds()
	if d < 0 {
		d = 0
	}
	b.buf = appendLineHead(b.buf, s, d)
}

func (b *MessageBuilder) endLine(cont bool) {
	b.buf = appendLineEnd(b.buf, cont)
	b.lines++
}

// A Line's JSON form, as both the messages and the run log write it:
// appendLineHead, then the piece (AppendPiece), then appendLineEnd.
func appendLineHead(dst []byte, s Stream, d int64) []byte {
	dst = append(dst, `{"s":"`...)
	dst = append(dst, s...)
	dst = append(dst, `","d":`...)
	return strconv.AppendInt(dst, d, 10)
}

func appendLineEnd(dst []byte, cont bool) []byte {
	if cont {
		dst = append(dst, `,"c":true`...)
	}
	return append(dst, '}')
}

// AppendPiece appends the field of a [Line] that carries the bytes p, with
// its leading comma: `,"x":"…"` (JSON text) when p is valid UTF-8 that SQS
// accepts and its escaped form is no larger than base64, else `,"b":"…"`
// (standard base64); nothing for an empty p. [Line.Bytes] gives back
// exactly p either way. The result is what [MessageBuilder.AppendLine] and
// the run log ([AppendRunLogPiece]) write for a piece.
func AppendPiece(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	if pieceIsText(p) {
		dst = append(dst, `,"x":"`...)
		dst = appendEscaped(dst, p)
	} else {
		dst = append(dst, `,"b":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, p)
	}
	return append(dst, '"')
}

// pieceIsText reports whether AppendPiece carries p as text.
func pieceIsText(p []byte) bool {
	escaped, ok := textLen(p)
	return ok && escaped <= base64.StdEncoding.EncodedLen(len(p))
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
