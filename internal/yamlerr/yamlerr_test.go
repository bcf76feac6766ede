package yamlerr

import (
	"bytes"
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
		{"runner: [1]\n", `conf.yaml:1: cannot unmarshal !!seq into yamlerr.inner`},
		{"runner:\n  grace: 1s\n   bad: indent\n", `conf.yaml:3: mapping values are not allowed in this context`},
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
	// Two unknown keys: one line each.
	err := decode(t, "runner:\n  grase: 1s\n  hb: 2s\n")
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("two problems: %v", err)
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
