package escape

import (
	"testing"
	"unicode"
)

func TestRunes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain text, é and 日本", "plain text, é and 日本"},
		{"two\nlines", `two\nlines`},
		{"tab\tcr\r bell\a esc\x1b[31m del\x7f", `tab\tcr\r bell\a esc\x1b[31m del\x7f`},
		{"c1 \u0085 nul \x00", `c1 \u0085 nul \x00`},
		{"bidi \u202e stays", "bidi \u202e stays"}, // not a Cc character: unicode.IsControl lets it through
	} {
		if got := Runes(tc.in, unicode.IsControl); got != tc.want {
			t.Errorf("Runes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The caller decides what to refuse.
func TestRunesRefusesWhatTheCallerSays(t *testing.T) {
	bidi := func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }
	if got, want := Runes("a\u202eb\nc", bidi), `a\u202eb\nc`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := Runes("a\nb", func(rune) bool { return false }); got != "a\nb" {
		t.Errorf("refusing nothing changed the text: %q", got)
	}
}
