package yamlerr

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type inner struct {
	Grace     string `yaml:"grace"`
	Heartbeat string `yaml:"heartbeat"`
}

type doc struct {
	Runner inner            `yaml:"runner"`
	Jobs   map[string]inner `yaml:"jobs"`
	List   []inner          `yaml:"list"`
	N      int              `yaml:"n"`
}

func decode(t *testing.T, src string) error {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	var d doc
	return Describe("conf.yaml", []byte(src), dec.Decode(&d), doc{})
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"runner:\n  grase: 1s\n", `conf.yaml:2: unknown key "grase" in runner; valid keys: grace, heartbeat; did you mean "grace"?`},
		{"jobs:\n  web:\n    heartbaet: 1s\n", `conf.yaml:3: unknown key "heartbaet" in jobs.web; valid keys: grace, heartbeat; did you mean "heartbeat"?`},
		{"list:\n  - grace: 1s\n  - zzz: 2\n", `conf.yaml:3: unknown key "zzz" in list[1]; valid keys: grace, heartbeat`},
		{"runnr: {}\n", `conf.yaml:1: unknown key "runnr" in the top level; valid keys: jobs, list, n, runner; did you mean "runner"?`},
		{"runner: [1]\n", `conf.yaml:1: runner must be a mapping (keys: grace, heartbeat), not a list (cannot unmarshal !!seq into yamlerr.inner)`},
		{"runner:\n  grace: 1s\n   bad: indent\n", `conf.yaml:3: mapping values are not allowed in this context (at "bad": indented unlike the keys above it?)`},
	} {
		err := decode(t, tc.src)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
	// A key or value is shown with control and format characters escaped:
	// a right-to-left override in a catalogue must not reorder the
	// message on the terminal.
	for _, src := range []string{"runner:\n  \"gr\u202eace\": 1s\n", "n: \"1\u202e2\"\n"} {
		if err := decode(t, src); err == nil || strings.ContainsRune(err.Error(), '\u202e') || !strings.Contains(err.Error(), `\u202e`) {
			t.Errorf("a format character in %q: %q", src, err)
		}
	}
}

// Issue 25: several problems are one line (deploy-trigger prints an error
// as one line and showed the line break as a literal \n), each with its
// file and line.
func TestSeveralProblemsAreOneLine(t *testing.T) {
	err := decode(t, "runner:\n  grase: 1s\n  hb: 2s\nn: x\n")
	want := `conf.yaml:2: unknown key "grase" in runner; valid keys: grace, heartbeat; did you mean "grace"?; also ` +
		`conf.yaml:3: unknown key "hb" in runner; valid keys: grace, heartbeat; also ` +
		`conf.yaml:4: n must be a whole number, not the string "x" (cannot unmarshal !!str into int)`
	if err == nil || err.Error() != want {
		t.Errorf("three problems:\n got  %v\n want %s", err, want)
	}
}

// Issue 25: a value of the wrong kind names its key and says what it must
// be (yaml.v3 says "cannot unmarshal !!str `x` into int").
func TestWrongTypeNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"n: lots\n", `conf.yaml:1: n must be a whole number, not the string "lots" (cannot unmarshal !!str into int)`},
		{"jobs:\n  web:\n    grace: [1s]\n", `conf.yaml:3: jobs.web.grace must be a string, not a list (cannot unmarshal !!seq into string)`},
		{"list:\n  - grace: {a: 1}\n", `conf.yaml:2: list[0].grace must be a string, not a mapping (cannot unmarshal !!map into string)`},
		{"list: a-long-string-value\n", "conf.yaml:1: list must be a list, not the string \"a-long-...\" (cannot unmarshal !!str into []yamlerr.inner); write one item per line, each starting with \"- \", or [a, b]"},
	} {
		if err := decode(t, tc.src); err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
}

// Issue 25: a syntax error names the line of the problem, not the line
// before the mapping holding it (yaml.v3 reports its parser's context
// mark: here line 2 for a key on line 5).
func TestSyntaxErrorNamesTheProblemLine(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"n: 1\njobs:\n  web:\n    grace: 1s\n     heartbeat: 2s\n", `conf.yaml:5: mapping values are not allowed in this context (at "heartbeat": indented unlike the keys above it?)`},
		{"n: 1\njobs:\n  web:\n    grace: 1s\n    heartbeat: 2s\n   other: 1\n", `conf.yaml:6: did not find expected key (at "other": indented unlike the keys above it?)`},
		{"n: 1\nrunner:\n  grace: 1s\n  heartbeat: 2s\n n: 2\n", `conf.yaml:5: did not find expected key (at "n": indented unlike the keys above it?)`},
		{"list:\n  - grace: 1s\n    heartbeat: 2s\n - grace: 3s\n", `conf.yaml:4: did not find expected key (at "grace": indented unlike the keys above it?)`},
		// Far from the start of its mapping, in a long file.
		{"n: 1\njobs:\n" + manyJobs(1000) + "   n: 2\n", `conf.yaml:2003: did not find expected key (at "n": indented unlike the keys above it?)`},
		// A list cut by a prefix fails otherwise: not taken for the problem.
		{"n: [1,\n  2,\n  3]\nrunner:\n  grace: 1s\n   bad: x\n", `conf.yaml:6: mapping values are not allowed in this context (at "bad": indented unlike the keys above it?)`},
	} {
		if err := decode(t, tc.src); err == nil || err.Error() != tc.want {
			t.Errorf("%.80q…:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	keys := []string{"account_id", "account_alias", "topic_arn"}
	for in, want := range map[string]string{"acount_id": "account_id", "topicarn": "topic_arn", "zzzzzz": "", "profile": ""} {
		if got := Closest(in, keys); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}

// manyJobs is n jobs of two lines each.
func manyJobs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  web%d:\n    grace: 1s\n", i)
	}
	return b.String()
}
