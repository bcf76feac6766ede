// Package yamlerr turns the errors of yaml.v3's strict decoding into what a
// person can act on: the file and line, the unknown key and where it stands,
// the valid keys, and the closest one. The environments file of
// deploy-trigger and the broker configuration share it, so a typo reads the
// same in both.
package yamlerr

import (
	"errors"
	"fmt"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deploy-broker/deploy-broker/internal/escape"
)

// unknownFieldRE is yaml.v3's message for a key KnownFields refuses.
var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// lineRE is the "line N: …" prefix of yaml.v3's other messages.
var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Describe rewrites err, the error of decoding src (the file name) strictly
// into a value whose types include each of types (pointers or values of the
// structs the document decodes into), each problem as FILE:LINE and what to
// do:
//
//	envs.yaml:5: unknown key "acount_id" in environments.prod; valid keys: account_alias, account_id, …; did you mean "account_id"?
//	broker.yaml:50: jobs.website.cpu must be a whole number, not the string "lots" (cannot unmarshal !!str into int)
//	broker.yaml:43: did not find expected key (at "max_length": indented unlike the keys above it?)
//
// The result is one line (deploy-trigger prints an error as one line,
// escaping line breaks): several problems are joined by "; also ". A syntax
// error names the line of the problem itself, not the start of the mapping
// holding it as yaml.v3 does. Errors it does not recognise keep their text,
// with the file name before it.
func Describe(name string, src []byte, err error, types ...any) error {
	if err == nil {
		return nil
	}
	known := map[string][]string{}
	for _, t := range types {
		collect(reflect.TypeOf(t), known)
	}
	var root yaml.Node
	parsed := yaml.Unmarshal(src, &root) == nil
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		// One line per problem: a value the decoder quotes may hold line
		// breaks, other control characters or format characters (a
		// right-to-left override reorders the line on a terminal); show
		// them escaped, as deploy-trigger escapes what it prints.
		out = append(out, escape.Runes(describeOne(name, m, src, parsed, &root, known), protocol.IsControl))
	}
	return errors.New(strings.Join(out, "; also "))
}

// describeOne describes one problem; parsed says whether src parsed as
// YAML (root is its tree), that is whether msg is not a syntax error.
func describeOne(name, msg string, src []byte, parsed bool, root *yaml.Node, known map[string][]string) string {
	where := func(line string) string {
		if name == "" {
			return "line " + line + ": "
		}
		return name + ":" + line + ": "
	}
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		line, key, typ := m[1], m[2], m[3]
		s := where(line) + fmt.Sprintf("unknown key %q", key)
		n, _ := strconv.Atoi(line)
		if path := pathOf(root, n, key); path != "" {
			s += " in " + path
		}
		if valid := known[typ]; len(valid) > 0 {
			s += "; valid keys: " + strings.Join(valid, ", ") + DidYouMean(key, valid)
		}
		return s
	}
	if s, ok := describeType(where, msg, root, known); ok {
		return s
	}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		if !parsed {
			n = syntaxLine(src, n, m[2])
			s := where(strconv.Itoa(n)) + m[2]
			switch key := keyAt(src, n); {
			case key != "" && indentationProblems[m[2]]:
				s += fmt.Sprintf(" (at %q: indented unlike the keys above it?)", key)
			case key != "":
				s += fmt.Sprintf(" (at %q)", key)
			}
			return s
		}
		// A message of the document's own unmarshalers names the line
		// only: name the key whose value is there ("runner.heartbeat").
		if key := pathAt(root, n, func(_ *yaml.Node, p string) bool { return !strings.HasSuffix(p, "]") }); key != "" {
			return where(m[1]) + key + ": " + m[2]
		}
		return where(m[1]) + m[2]
	}
	if name == "" {
		return msg
	}
	return name + ": " + msg
}

// collect records the YAML keys of every struct type reachable from t,
// under the name yaml.v3 gives the type ("pkg.Type").
func collect(t reflect.Type, known map[string][]string) {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return
	}
	name := t.String()
	if _, done := known[name]; done {
		return
	}
	known[name] = nil
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		key, opts, _ := strings.Cut(tag, ",")
		if key == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			collect(f.Type, known)
			keys = append(keys, known[f.Type.String()]...)
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		keys = append(keys, key)
		collect(f.Type, known)
	}
	sort.Strings(keys)
	known[name] = keys
}

// pathOf finds the mapping key named key on line and returns the dotted
// path of the mapping holding it ("environments.prod"), or "".
func pathOf(root *yaml.Node, line int, key string) string {
	var walk func(n *yaml.Node, path []string) (string, bool)
	walk = func(n *yaml.Node, path []string) (string, bool) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, ok := walk(c, path); ok {
					return p, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Line == line && k.Value == key {
					if len(path) == 0 {
						return "the top level", true
					}
					return strings.Join(path, "."), true
				}
				if p, ok := walk(v, append(path, k.Value)); ok {
					return p, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if p, ok := walk(c, append(path, fmt.Sprintf("[%d]", i))); ok {
					return p, true
				}
			}
		}
		return "", false
	}
	p, _ := walk(root, nil)
	return strings.ReplaceAll(p, ".[", "[")
}

// Closest is the candidate nearest to s by edit distance, if near enough to
// be a typo (at most a third of its length, at least 2), or the one candidate
// s is a prefix of ("topic" for "topic_arn"), else "".
func Closest(s string, candidates []string) string {
	var prefixed []string
	for _, c := range candidates {
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	best, bestD := "", -1
	for _, c := range candidates {
		d := distance(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

// DidYouMean is `; did you mean "x"?` for the candidate Closest finds, or
// "" when none is near: the tail of an "unknown name" message.
func DidYouMean(s string, candidates []string) string {
	if c := Closest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
