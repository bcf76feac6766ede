package trigger

import (
	"bytes"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// escapeLines are lines with real sequences: colours, other CSI, OSC and
// DCS strings, short and nF escapes, a lone ESC, C1 controls in UTF-8.
var escapeLines = []string{
	"\x1b[33mWARN\x1b[0m disk 91%",
	"\x1b[38;2;255;128;0morange\x1b[m \x1b[38:5:196mred\x1b[0m",
	"a\x1b[2J\x1b[1;1Hb\x1b[?1049h\x1b[>4mc\x1b[ q",
	"a\x1b]0;title\x07b\x1b]52;c;aGk=\x1b\\c",
	"a\x1bPq#0;1\x1b\\b\x1b_apc\x1b\\c",
	"a\x1b(Bb\x1bcc\x1b7d\x1b",
	"a\x1b\x1b[1mb",
	"a\u009b2Jb\u009d0;t\u009c€",
}

// Issue: the runner cuts a line into pieces (a partial line that waits, a
// long one), and a sequence cut between two pieces printed as "3mWARN" or
// was lost. Cut at every byte, a line prints as it does whole, with and
// without colours.
func TestCleanEscapesSplitAnywhere(t *testing.T) {
	for _, line := range escapeLines {
		b := []byte(line)
		for _, color := range []bool{true, false} {
			want := string(cleanEscapes(b, color))
			for i := 0; i <= len(b); i++ {
				var c escapeCarry
				got := string(c.clean(protocol.Stdout, b[:i:i], color, false))
				got += string(c.clean(protocol.Stdout, b[i:], color, true))
				if got != want {
					t.Errorf("%q cut at %d (colour %v) = %q, whole %q", line, i, color, got, want)
				}
			}
		}
	}
}

// The carry is per stream (stdout's half sequence does not join stderr's
// next piece) and lasts across records: through the printers, "--output
// plain" strips a split colour whole and --color keeps it.
func TestSplitEscapeThroughPrinters(t *testing.T) {
	records := []protocol.Record{
		output(1, protocol.Line{Stream: protocol.Stdout, Text: "build \x1b[3", Cont: true}),
		output(2, protocol.Line{Stream: protocol.Stderr, Text: "1mnot a colour"}),
		output(3, protocol.Line{Stream: protocol.Stdout, Text: "3mWARN\x1b", Cont: true}, protocol.Line{Stream: protocol.Stdout, Text: "[0m done"}),
	}
	for _, c := range []struct {
		name   string
		p      func(stdout, stderr *bytes.Buffer) printer
		stdout string
	}{
		{"plain", func(o, e *bytes.Buffer) printer { return newPlainPrinter(o, e, false, false) }, "build WARN done\n"},
		{"plain-color", func(o, e *bytes.Buffer) printer { return newPlainPrinter(o, e, true, false) }, "build \x1b[33mWARN\x1b[0m done\n"},
		{"terminal", func(o, e *bytes.Buffer) printer { return newTerminalPrinter(o, e, true) }, "build \x1b[33mWARN\x1b[0m done\n"},
		{"github", func(o, e *bytes.Buffer) printer { return newGithubPrinter(o, e, "", "", "tok") }, "::stop-commands::tok\nbuild \x1b[33mWARN\x1b[0m done\n"},
	} {
		var stdout, stderr bytes.Buffer
		p := c.p(&stdout, &stderr)
		for _, r := range records {
			if err := p.record(r); err != nil {
				t.Fatal(err)
			}
		}
		if stdout.String() != c.stdout || stderr.String() != "1mnot a colour\n" {
			t.Errorf("%s: stdout %q, stderr %q; want %q, %q", c.name, stdout.String(), stderr.String(), c.stdout, "1mnot a colour\n")
		}
	}
}

// A sequence that never ends is not held without bound: the carry stays
// short, and the sequence is still taken out whole when it goes on.
func TestEscapeCarryBounded(t *testing.T) {
	for _, c := range []struct{ start, more, end string }{
		{"\x1b]52;c;", "aGk=", "\x07after"}, // OSC (clipboard)
		{"\x1bPq", "#0;1", "\x1b\\after"},   // DCS
		{"\x1b[38;5;1", ";1", "mafter"},     // a long SGR: its colour is lost
		{"\x1b[1", "!!", "pafter"},          // CSI in its intermediates
		{"\x1b(", "((", "Bafter"},           // nF
	} {
		for _, color := range []bool{true, false} {
			var carry escapeCarry
			got := string(carry.clean(protocol.Stderr, []byte("before"+c.start), color, false))
			for i := 0; i < 1000; i++ {
				got += string(carry.clean(protocol.Stderr, []byte(c.more), color, false))
				if len(carry.stderr) > maxEscapeCarry {
					t.Fatalf("%q: the carry holds %d bytes", c.start, len(carry.stderr))
				}
			}
			got += string(carry.clean(protocol.Stderr, []byte(c.end), color, true))
			if got != "beforeafter" {
				t.Errorf("%q (colour %v) printed %.80q… (%d bytes)", c.start, color, got, len(got))
			}
		}
	}
}
