package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Issue 25: the catalogue's decoding errors, on the example catalogue
// edited as a person would get it wrong: FILE:LINE of the problem itself,
// the key by name, one line.
func TestCatalogueDecodingErrors(t *testing.T) {
	base, err := os.ReadFile("../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lineOf := func(s string) string {
		for i, l := range strings.Split(string(base), "\n") {
			if strings.Contains(l, s) {
				return strconv.Itoa(i + 1)
			}
		}
		t.Fatalf("the example has no line %q", s)
		return ""
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"a key indented one space too far", "        max_length: 32", "         max_length: 32",
			":" + lineOf("max_length: 32") + `: did not find expected key (at "max_length": indented unlike the keys above it?)`},
		{"a key indented one space short", "  grace: 30s", " grace: 30s",
			":" + lineOf("grace: 30s") + `: did not find expected key (at "grace": indented unlike the keys above it?)`},
		{"a number that is not", "cpu: 256", "cpu: lots",
			":" + lineOf("cpu: 256") + `: jobs.website.cpu must be a whole number, not the string "lots" (cannot unmarshal !!str into int)`},
		{"a duration that is a list", "heartbeat: 10s", "heartbeat: [10s]",
			":" + lineOf("heartbeat: 10s") + `: runner.heartbeat: a duration must be a string like "30m"`},
		{"two wrong values", "cpu: 256\n    memory: 512", "cpu: lots\n    memory: [1]",
			":" + lineOf("cpu: 256") + `: jobs.website.cpu must be a whole number, not the string "lots" (cannot unmarshal !!str into int); also `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(base), tc.old) {
				t.Fatalf("the example has no %q", tc.old)
			}
			path := filepath.Join(t.TempDir(), "broker.yaml")
			if err := os.WriteFile(path, []byte(strings.Replace(string(base), tc.old, tc.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			want := "broker configuration " + path + tc.want
			if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got  %v\nwant %s…", err, want)
			}
		})
	}
}
