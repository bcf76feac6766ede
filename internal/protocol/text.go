package protocol

import (
	"encoding/base64"
	"fmt"
	"unicode/utf8"
)

// EncodeText prepares job output bytes for a Line. Valid UTF-8 goes into text
// as is: JSON escapes the control characters SQS refuses (ESC becomes
// \u001b), so ANSI colour survives. Bytes that are not valid UTF-8, or that
// hold U+FFFE or U+FFFF (which JSON does not escape and SQS refuses), go into
// b64 instead. Either way [DecodeText] gives back exactly the same bytes.
func EncodeText(p []byte) (text, b64 string) {
	if sqsSafeUTF8(p) {
		return string(p), ""
	}
	return "", base64.StdEncoding.EncodeToString(p)
}

// sqsSafeUTF8 reports whether p is valid UTF-8 whose JSON encoding SQS accepts.
func sqsSafeUTF8(p []byte) bool {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

// Bytes returns the bytes the line carries.
func (l Line) Bytes() ([]byte, error) { return DecodeText(l.Text, l.B64) }

// Check reports whether the line's bytes can be decoded: the error
// [Line.Bytes] would return, without decoding them.
func (l Line) Check() error {
	if l.B64 == "" || validBase64(l.B64) {
		return nil
	}
	return errBadBase64
}

var errBadBase64 = fmt.Errorf("line is not valid base64 (standard alphabet, padded)")

// DecodeText reverses [EncodeText].
func DecodeText(text, b64 string) ([]byte, error) {
	if b64 == "" {
		return []byte(text), nil
	}
	// Only the canonical form EncodeText writes: DecodeString alone would
	// also take line breaks inside the text.
	if !validBase64(b64) {
		return nil, errBadBase64
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("line is not valid base64: %w", err)
	}
	return b, nil
}

// validBase64 reports whether s is the canonical standard base64 of some
// bytes, as [EncodeText] writes it: a multiple of 4 characters of the
// standard alphabet, '=' padding only at the end, unused bits zero. Every
// such s decodes with [DecodeText]. It allocates nothing.
func validBase64(s string) bool {
	if len(s) == 0 || len(s)%4 != 0 {
		return false
	}
	pad := 0
	if s[len(s)-1] == '=' {
		pad++
		if s[len(s)-2] == '=' {
			pad++
		}
	}
	body := s[:len(s)-pad]
	for i := 0; i < len(body); i++ {
		if b64Value(body[i]) < 0 {
			return false
		}
	}
	// The last character before the padding carries bits that encode
	// nothing: 4 of them with "==", 2 with "=". They must be zero.
	switch last := b64Value(body[len(body)-1]); pad {
	case 1:
		return last&0x3 == 0
	case 2:
		return last&0xf == 0
	}
	return true
}

func b64Value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}
