package protocol

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IsControl reports whether r may not appear in text that the broker takes
// from a request and shows, logs or passes on: parameter values and requester
// fields. That is every control character (Unicode category Cc: C0, DEL and
// the C1 controls U+0080–U+009F), every format character (category Cf:
// bidirectional overrides and isolates such as U+202E and U+2066–U+2069,
// zero-width characters, U+FEFF, the tag characters U+E0000–U+E007F…), and
// the line and paragraph separators U+2028 and U+2029. Such characters end
// lines, move the terminal's cursor or make a value read differently from
// what it is.
func IsControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' ||
		r >= 0x80 && (unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r))
}

// FindControl returns the first rune of s for which [IsControl] is true.
func FindControl(s string) (rune, bool) {
	for _, r := range s {
		if IsControl(r) {
			return r, true
		}
	}
	return 0, false
}

// DescribeControl names a rune found by [FindControl] for an error message,
// as in "contains a control character (U+202E, an invisible format
// character)", without quoting the text around it (which may be secret).
func DescribeControl(r rune) string {
	switch {
	case r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
		return fmt.Sprintf("U+%04X, a line break", r)
	case unicode.Is(unicode.Cc, r):
		return fmt.Sprintf("U+%04X", r)
	default:
		return fmt.Sprintf("U+%04X, an invisible format character such as a bidirectional override", r)
	}
}

// MaxStopReasonLength bounds an ECS stop reason in a task record: ECS's own
// reasons are a line or two, and the trigger prints it on the CI log.
const MaxStopReasonLength = 512

// StopReason is an ECS stop reason as it may enter a task record: every
// character [IsControl] refuses (terminal escapes, line breaks, bidirectional
// overrides) becomes a space, runs of spaces become one, and the result is
// cut to MaxStopReasonLength bytes without splitting a character, the cut
// marked with "…". ECS reasons can quote text from the task (a container's
// reason, an image reference), which the job may control.
func StopReason(s string) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if IsControl(r) {
			return ' '
		}
		return r
	}, s)), " ")
	if len(s) <= MaxStopReasonLength {
		return s
	}
	cut := MaxStopReasonLength - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
