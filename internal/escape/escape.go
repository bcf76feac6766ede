// Package escape shows the characters a caller refuses as Go escapes, so
// that text from a record, a request or an error cannot break a line or act
// on the terminal when printed. deploy-trigger's printers and yamlerr's
// messages share it, each with its own idea of what to refuse.
package escape

import (
	"strconv"
	"strings"
)

// Runes returns s with every rune for which refuse is true written as the
// escape strconv.QuoteRune gives it, without the quotes: a line break as
// \n, U+202E as \u202e. s comes back unchanged when it has no such rune.
func Runes(s string, refuse func(rune) bool) string {
	if !strings.ContainsFunc(s, refuse) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if refuse(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
