package protocol

import (
	"bytes"
	"fmt"
	"strings"
)

// maxObjectKeys bounds the keys of one JSON object. The widest object of the
// protocol is a run request's params (at most MaxParams); a record has about
// ten fields. The bound keeps the duplicate check linear in the input.
const maxObjectKeys = 2 * MaxParams

// checkKeys closes the gaps that encoding/json leaves in a strict decoder: it
// matches field names case-insensitively, with Unicode folding ("RUN_ID",
// "\u0052un_id" and "requeſted_at" with U+017F all fill a field), and lets a
// repeated key silently override an earlier one. Every name in this protocol
// (field names and parameter names alike) is lower-case ASCII letters, digits
// and '_', so a key must be exactly that, written without escapes, and appear
// once per object.
//
// b must already be one valid JSON value (decodeStrict has accepted it): the
// check only skims it, looking at object keys and skipping everything else,
// without allocating, so that it costs little next to decoding even for a
// feedback message of many megabytes.
func checkKeys(b []byte, what string) error {
	var s keyScanner
	if err := s.scan(b); err != nil {
		return fmt.Errorf("%s is not valid: %w", what, err)
	}
	return nil
}

// keyScanner holds the state of one scan: the open containers, innermost
// last, and the keys seen in each open object, in one shared slice.
type keyScanner struct {
	frames []keyFrame
	keys   [][]byte
	stack  [16]keyFrame
	kbuf   [64][]byte
}

type keyFrame struct {
	object bool
	first  int // index in keys of the first key recorded inside this container
}

func (s *keyScanner) scan(b []byte) error {
	s.frames, s.keys = s.stack[:0], s.kbuf[:0]
	expectKey := false
	for i := 0; i < len(b); {
		switch b[i] {
		case '{':
			s.frames = append(s.frames, keyFrame{object: true, first: len(s.keys)})
			expectKey = true
			i++
		case '[':
			s.frames = append(s.frames, keyFrame{first: len(s.keys)})
			expectKey = false
			i++
		case '}', ']':
			if n := len(s.frames); n > 0 {
				s.keys = s.keys[:s.frames[n-1].first]
				s.frames = s.frames[:n-1]
			}
			expectKey = false
			i++
		case ',':
			expectKey = len(s.frames) > 0 && s.frames[len(s.frames)-1].object
			i++
		case '"':
			end := stringEnd(b, i+1)
			if expectKey {
				if err := s.key(b[i+1 : end]); err != nil {
					return err
				}
				expectKey = false
			}
			i = end + 1
		default:
			i++
		}
	}
	return nil
}

// key checks one raw key (between its quotes) of the innermost object.
func (s *keyScanner) key(k []byte) error {
	f := s.frames[len(s.frames)-1]
	if !plainName(k) {
		if plainName(bytes.ToLower(k)) {
			return fmt.Errorf("field %q is not lower-case; field names are exact", s.path(k))
		}
		return fmt.Errorf("field %q is not a field name of this protocol (lower-case ASCII letters, digits and '_', without escapes)", s.path(k))
	}
	seen := s.keys[f.first:]
	if len(seen) >= maxObjectKeys {
		return fmt.Errorf("an object has more than %d fields", maxObjectKeys)
	}
	for _, p := range seen {
		if bytes.Equal(p, k) {
			return fmt.Errorf("field %q appears twice", s.path(k))
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

// path names key k of the innermost object: the keys of the enclosing
// objects joined by '.', as in "requester.actor" (array indexes are left out).
func (s *keyScanner) path(k []byte) string {
	var parts []string
	for i, f := range s.frames {
		if !f.object || i == len(s.frames)-1 {
			continue
		}
		// The enclosing object's current key is the last one it recorded:
		// the keys of deeper objects come after it.
		end := len(s.keys)
		if i+1 < len(s.frames) {
			end = s.frames[i+1].first
		}
		if end > f.first {
			parts = append(parts, string(s.keys[end-1]))
		}
	}
	parts = append(parts, string(k))
	return truncate(strings.Join(parts, "."), 80)
}

// plainName reports whether k is a non-empty run of [a-z0-9_].
func plainName(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// stringEnd returns the index of the quote that closes the JSON string whose
// contents start at b[from]; len(b) if there is none. A quote closes the
// string unless an odd number of backslashes precede it.
func stringEnd(b []byte, from int) int {
	for j := from; j < len(b); {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return len(b)
		}
		q += j
		n := 0
		for p := q - 1; p >= from && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		j = q + 1
	}
	return len(b)
}
