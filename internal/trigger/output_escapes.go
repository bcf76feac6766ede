package trigger

import (
	"bytes"
	"io"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// cleanEscapes takes out of the job's output every terminal control
// sequence but colours: ESC sequences (CSI, OSC, DCS, SOS, PM, APC with
// their strings, and the short ones) and the C1 controls U+0080–U+009F (and
// bytes 0x80–0x9F outside UTF-8), which can move the cursor, clear the
// screen, set the window title or the clipboard (OSC 52) in the name of
// deploy-trigger. SGR sequences (ESC [ digits ; : m, the colours) stay when
// keepSGR. Other C0 controls (tab, CR, backspace) stay: they cannot reach
// beyond the job's own lines.
func cleanEscapes(b []byte, keepSGR bool) []byte {
	i := 0
	for i < len(b) && b[i] != 0x1b && (b[i] < 0x80 || b[i] > 0x9f) {
		i++
	}
	if i == len(b) {
		return b // nothing to take out (the common case)
	}
	out := make([]byte, 0, len(b))
	i = 0
	for i < len(b) {
		c := b[i]
		switch {
		case c == 0x1b:
			n, sgr, _ := escapeLen(b[i:])
			if sgr && keepSGR {
				out = append(out, b[i:i+n]...)
			}
			i += n
		case c < 0x80:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			switch {
			case r == utf8.RuneError && size == 1 && c <= 0x9f: // an 8-bit C1 control
			case r >= 0x80 && r <= 0x9f: // a C1 control in UTF-8
			default:
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

// plainText reports whether s has nothing for cleanEscapes to take out:
// no ESC and no byte 0x80–0x9F (a C1 control, or a continuation byte that
// may belong to one). It is cleanEscapes' own fast check, on a string.
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0x1b || (c >= 0x80 && c <= 0x9f) {
			return false
		}
	}
	return true
}

// writePlainLine is writeLine's fast path, for the common piece: text that
// ends its line, with nothing held in the stream's carry and nothing for
// cleanEscapes to take out. It writes the text as it is, without copying it
// into a buffer of its own first, and reports whether it handled l.
func writePlainLine(l protocol.Line, r protocol.Record, stdout, stderr io.Writer, atStart map[protocol.Stream]bool, carry *escapeCarry, timestamps bool) (bool, error) {
	if l.B64 != "" || l.Cont || !carry.empty(l.Stream) || !plainText(l.Text) {
		return false, nil
	}
	w := stdout
	if l.Stream == protocol.Stderr {
		w = stderr
	}
	if timestamps && atStart[l.Stream] {
		var ts [32]byte
		if _, err := w.Write(lineTime(r, l).UTC().AppendFormat(ts[:0], "2006-01-02T15:04:05.000Z ")); err != nil {
			return true, err
		}
	}
	if !atStart[l.Stream] {
		atStart[l.Stream] = true
	}
	if _, err := io.WriteString(w, l.Text); err != nil {
		return true, err
	}
	_, err := io.WriteString(w, "\n")
	return true, err
}

// escapeLen is the length of the escape sequence at the start of b (b[0] is
// ESC), whether it is SGR, and whether the end of b cut it short (cut: the
// sequence runs to the end of b, and more bytes could still belong to it).
// An ESC followed by a byte that starts no sequence is one byte.
func escapeLen(b []byte) (n int, sgr, cut bool) {
	if len(b) < 2 {
		return len(b), false, true
	}
	switch c := b[1]; {
	case c == '[': // CSI: parameters 0x30–0x3F, intermediates 0x20–0x2F, final 0x40–0x7E
		j := 2
		plain := true // only digits, ';' and ':' (no private markers)
		for j < len(b) && b[j] >= 0x30 && b[j] <= 0x3f {
			plain = plain && (b[j] <= '9' || b[j] == ';' || b[j] == ':')
			j++
		}
		k := j
		for j < len(b) && b[j] >= 0x20 && b[j] <= 0x2f {
			j++
		}
		if j < len(b) && b[j] >= 0x40 && b[j] <= 0x7e {
			return j + 1, plain && j == k && b[j] == 'm', false
		}
		return j, false, j == len(b)
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_': // a string, ended by BEL or ST
		for j := 2; j < len(b); j++ {
			switch b[j] {
			case 0x07:
				return j + 1, false, false
			case 0x1b:
				if j+1 < len(b) && b[j+1] == '\\' {
					return j + 2, false, false
				}
				return j, false, false // the ESC starts a sequence of its own
			}
		}
		return len(b), false, true
	case c >= 0x20 && c <= 0x2f: // nF: intermediates, then a final byte
		j := 2
		for j < len(b) && b[j] >= 0x20 && b[j] <= 0x2f {
			j++
		}
		if j < len(b) && b[j] >= 0x30 && b[j] <= 0x7e {
			return j + 1, false, false
		}
		return j, false, j == len(b)
	case c >= 0x30 && c <= 0x7e:
		return 2, false, false
	}
	return 1, false, false
}

// maxEscapeCarry bounds what escapeCarry keeps of a sequence left open at
// the end of a piece. Longer, a sequence is still taken out whole, but kept
// by its kind only (see shortCarry): a split SGR longer than this loses its
// colour, nothing else.
const maxEscapeCarry = 128

// escapeCarry is, per stream, the end of the last piece of a line that the
// next piece may complete: an escape sequence, or a UTF-8 character, the
// runner's cut left open (it cuts a line into pieces when a partial line
// waits or is long, so ESC [ 3 | 3 m can arrive in two pieces, even two
// records). Cleaning each piece alone would print "3m" or drop the colour;
// with the carry, the pieces of a line print as the whole line would. The
// zero value holds nothing.
type escapeCarry struct{ stdout, stderr []byte }

// empty reports whether nothing is held for stream s.
func (c *escapeCarry) empty(s protocol.Stream) bool {
	if s == protocol.Stderr {
		return len(c.stderr) == 0
	}
	return len(c.stdout) == 0
}

// clean cleans piece b of a line of stream s as cleanEscapes does,
// joined after the carry of the stream's previous piece. Unless the line
// ends here, what b leaves open at its end is held back for the next piece;
// at a line's end nothing is held back: a sequence left open is taken out,
// as in a whole line.
func (c *escapeCarry) clean(s protocol.Stream, b []byte, keepSGR, lineEnds bool) []byte {
	held := &c.stdout
	if s == protocol.Stderr {
		held = &c.stderr
	}
	if len(*held) > 0 {
		b = append(*held, b...)
		*held = nil
	}
	if !lineEnds {
		if t := openTail(b); t < len(b) {
			*held = shortCarry(b[t:])
			b = b[:t]
		}
	}
	return cleanEscapes(b, keepSGR)
}

// openTail is where an escape sequence, or a UTF-8 character, that the end
// of b cuts short starts; len(b) if none.
func openTail(b []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], 0x1b)
		if j < 0 {
			break
		}
		i += j
		n, _, cut := escapeLen(b[i:])
		if cut {
			return i
		}
		i += n
	}
	// A UTF-8 character cut in two would hide a C1 control (C2 | 9B) or lose
	// its continuation bytes (a lone 80–9F is taken out as a C1 control).
	for k := len(b) - 1; k >= i && k >= len(b)-utf8.UTFMax+1; k-- {
		if utf8.RuneStart(b[k]) {
			if !utf8.FullRune(b[k:]) {
				return k
			}
			break
		}
	}
	return len(b)
}

// shortCarry is a copy of the open sequence t to hold for the next piece,
// bounded: the content of a string (OSC, DCS…) is never printed, so only
// its introducer is kept; a CSI or nF sequence longer than maxEscapeCarry
// is kept as an equivalent short one that is not SGR, so the rest of it is
// still taken out.
func shortCarry(t []byte) []byte {
	switch {
	case len(t) >= 2 && t[0] == 0x1b && (t[1] == ']' || t[1] == 'P' || t[1] == 'X' || t[1] == '^' || t[1] == '_'):
		t = t[:2]
	case len(t) > maxEscapeCarry && t[1] == '[' && t[len(t)-1] <= 0x2f:
		t = []byte("\x1b[!") // in the intermediates
	case len(t) > maxEscapeCarry && t[1] == '[':
		t = []byte("\x1b[<") // in the parameters, private: not SGR
	case len(t) > maxEscapeCarry:
		t = []byte("\x1b!") // nF, in the intermediates
	}
	return append([]byte(nil), t...)
}
