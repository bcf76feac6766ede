package protocol

import (
	"bytes"
	"unicode/utf8"
)

// fastRecords decodes the JSON array of records in b (the decompressed
// records of a feedback message) without reflection, for the trigger's hot
// path. s is string(b): the lines' text without escapes are substrings of
// it, so a message of thousands of lines costs one copy instead of one
// allocation per line.
//
// It reads output records only in the exact form [MessageBuilder] writes
// them (keys in its order, no whitespace, canonical numbers, no Unicode
// surrogate escapes); any other record (started, heartbeat, exit…) is
// decoded on its own by encoding/json and checkKeys, as the whole array
// would be. It returns ok false when anything is not as expected: the
// caller then decodes the whole array the ordinary way, which accepts or
// rejects it with the usual errors. What it accepts, the ordinary way
// accepts too and decodes to the same records (TestFastRecordsMatchesJSON);
// the form admits only this protocol's keys, each once, so checkKeys has
// nothing to add for output records.
func fastRecords(b []byte, s string) (recs []Record, ok bool) {
	p := fastParser{b: b, s: s}
	if !p.lit("[") || p.peek(']') {
		return nil, false
	}
	recs = make([]Record, 0, 4)
	for {
		var r Record
		if !p.outputRecord(&r) && !p.otherRecord(&r) {
			return nil, false
		}
		recs = append(recs, r)
		if len(recs) > MaxRecordsPerMessage {
			return nil, false
		}
		if p.lit(",") {
			continue
		}
		return recs, p.lit("]") && p.i == len(b)
	}
}

type fastParser struct {
	b     []byte
	s     string
	i     int
	buf   []byte // scratch for strings with escapes
	lines []Line // scratch for a record's lines
}

func (p *fastParser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

// lit consumes lit if the input continues with it.
func (p *fastParser) lit(lit string) bool {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// outputRecord reads an output record in MessageBuilder's form; on false
// the position is unchanged when nothing matched yet (the record may be of
// another type), or the input is not in the form (otherRecord then fails
// too, or decodes it fully).
func (p *fastParser) outputRecord(r *Record) bool {
	start := p.i
	if !p.lit(`{"type":"output","src":"runner","seq":`) {
		return false
	}
	seq, ok := p.uint()
	if !ok || !p.lit(`,"t":`) {
		p.i = start
		return false
	}
	if !p.peek('"') { // before slicing past it: the input may end here
		p.i = start
		return false
	}
	tEnd := bytes.IndexByte(p.b[p.i+1:], '"')
	if tEnd < 0 {
		p.i = start
		return false
	}
	raw := p.b[p.i : p.i+tEnd+2]
	if bytes.IndexByte(raw, '\\') >= 0 || r.Time.UnmarshalJSON(raw) != nil {
		p.i = start
		return false
	}
	p.i += len(raw)
	if !p.lit(`,"output":{"lines":[`) {
		p.i = start
		return false
	}
	out := &Output{Lines: []Line{}}
	if !p.lit("]") {
		// The lines go into the parser's scratch, then into a slice of
		// their exact number.
		p.lines = p.lines[:0]
		for {
			var l Line
			if !p.line(&l) {
				p.i = start
				return false
			}
			p.lines = append(p.lines, l)
			if p.lit(",") {
				continue
			}
			if p.lit("]") {
				out.Lines = append(make([]Line, 0, len(p.lines)), p.lines...)
				break
			}
			p.i = start
			return false
		}
	}
	if !p.lit("}}") {
		p.i = start
		return false
	}
	r.Type, r.Src, r.Seq, r.Output = TypeOutput, SourceRunner, seq, out
	return true
}

// line reads {"s":"out","d":12,"x":"…","c":true} (x or b, and c, optional).
func (p *fastParser) line(l *Line) bool {
	switch {
	case p.lit(`{"s":"out","d":`):
		l.Stream = Stdout
	case p.lit(`{"s":"err","d":`):
		l.Stream = Stderr
	default:
		return false
	}
	d, ok := p.uint()
	if !ok || d > 1<<62 {
		return false
	}
	l.Millis = int64(d)
	switch {
	case p.lit(`,"x":"`):
		l.Text, ok = p.str()
	case p.lit(`,"b":"`):
		l.B64, ok = p.str()
	}
	if !ok {
		return false
	}
	l.Cont = p.lit(`,"c":true`)
	return p.lit("}")
}

// uint reads a JSON number that is a canonical unsigned integer.
func (p *fastParser) uint() (uint64, bool) {
	j := p.i
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == p.i || (p.b[p.i] == '0' && j-p.i > 1) || (j < len(p.b) && (p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E')) {
		return 0, false
	}
	var n uint64
	for _, c := range p.b[p.i:j] {
		if n > (1<<64-1-9)/10 {
			return 0, false // might overflow: encoding/json says
		}
		n = n*10 + uint64(c-'0')
	}
	p.i = j
	return n, true
}

// str reads the rest of a JSON string (after its opening quote) and its
// closing quote. Without escapes it is a substring of s; escapes other than
// surrogate halves are decoded as encoding/json does. Invalid UTF-8 and raw
// control characters (which encoding/json replaces or refuses) fail.
func (p *fastParser) str() (string, bool) {
	start := p.i
	esc, high := false, false
	j := start
	for ; j < len(p.b); j++ {
		for j < len(p.b) && strClass[p.b[j]] == 0 {
			j++
		}
		if j == len(p.b) {
			break
		}
		c := p.b[j]
		if c == '"' {
			break
		}
		switch strClass[c] {
		case classEscape:
			esc = true
			j++ // the escaped byte cannot close the string
		case classControl:
			return "", false
		case classHigh:
			high = true
		}
	}
	if j >= len(p.b) {
		return "", false
	}
	raw := p.b[start:j]
	if high && !utf8.Valid(raw) {
		return "", false
	}
	p.i = j + 1
	if !esc {
		return p.s[start:j], true
	}
	out, ok := unescape(p.buf[:0], raw)
	p.buf = out
	return string(out), ok
}

// Byte classes inside a JSON string, for str: 0 for the bytes that need no
// look (printable ASCII but '"' and '\\').
const (
	classQuote = 1 + iota
	classEscape
	classControl
	classHigh
)

var strClass = func() (t [256]byte) {
	for c := range t {
		switch {
		case c == '"':
			t[c] = classQuote
		case c == '\\':
			t[c] = classEscape
		case c < 0x20:
			t[c] = classControl
		case c >= utf8.RuneSelf:
			t[c] = classHigh
		}
	}
	return t
}()

// unescape decodes the JSON string content raw, which has escapes.
func unescape(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		k := bytes.IndexByte(raw[i:], '\\')
		if k < 0 {
			return append(dst, raw[i:]...), true
		}
		dst = append(dst, raw[i:i+k]...)
		i += k
		if i+1 >= len(raw) {
			return dst, false
		}
		switch c := raw[i+1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(raw) {
				return dst, false
			}
			v := rune(0)
			for _, h := range raw[i+2 : i+6] {
				d := unhex(h)
				if d < 0 {
					return dst, false
				}
				v = v<<4 | d
			}
			if v >= 0xD800 && v <= 0xDFFF {
				return dst, false // a surrogate half: encoding/json pairs or replaces it
			}
			dst = utf8.AppendRune(dst, v)
			i += 6
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// otherRecord decodes one record of any form with encoding/json, strictly,
// as the whole array would decode it.
func (p *fastParser) otherRecord(r *Record) bool {
	end, ok := valueEnd(p.b, p.i)
	if !ok {
		return false
	}
	v := p.b[p.i:end]
	if decodeStrict(v, MaxDecompressedBytes, "feedback record", r) != nil || checkKeys(v, "feedback record") != nil {
		return false
	}
	p.i = end
	return true
}

// valueEnd is the end of the JSON object that starts at b[i]: matching
// braces and brackets, skipping strings. Whether it is valid JSON is for
// the decoder to say.
func valueEnd(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case '"':
			i = stringEnd(b, i+1)
		}
	}
	return 0, false
}
