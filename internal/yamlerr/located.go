package yamlerr

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// typeErrorRE is yaml.v3's message for a value of the wrong kind: the tag
// of the value, the value itself (cut to 7 bytes and "..." when longer;
// absent for lists and mappings) and the Go type it should have fitted.
var typeErrorRE = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// describeType rewrites a wrong-type message to name the key and say what
// the value must be: `jobs.website.cpu must be a whole number, not the
// string "lots" (cannot unmarshal !!str into int)`. ok is false when the value is not found in root.
func describeType(where func(string) string, msg string, root *yaml.Node, known map[string][]string) (string, bool) {
	m := typeErrorRE.FindStringSubmatch(msg)
	if m == nil {
		return "", false
	}
	line, tag, value, goType := m[1], m[2], m[3], m[4]
	n, _ := strconv.Atoi(line)
	path := pathAt(root, n, func(v *yaml.Node, _ string) bool { return v.ShortTag() == "!!"+tag })
	if path == "" {
		return "", false
	}
	got := map[string]string{"str": "the string", "int": "the number", "float": "the number", "bool": "the boolean", "seq": "a list", "map": "a mapping", "null": "an empty value", "timestamp": "the timestamp"}[tag]
	if got == "" {
		got = "a !!" + tag
	}
	if tag != "seq" && tag != "map" {
		got += " " + strconv.Quote(value)
	}
	// yaml.v3's own words stay, after the plain ones, for those who know
	// them (and for whoever matches on them).
	s := where(line) + path + " must be " + kindOf(goType, known) + ", not " + got + " (cannot unmarshal !!" + tag + " into " + goType + ")"
	if strings.HasPrefix(goType, "[]") && tag != "seq" {
		s += `; write one item per line, each starting with "- ", or [a, b]`
	}
	return s, true
}

// kindOf says in words what a Go type takes in YAML.
func kindOf(goType string, known map[string][]string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "[]string":
		return "a list of strings"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	}
	if keys, ok := known[strings.TrimPrefix(goType, "*")]; ok && len(keys) > 0 {
		return "a mapping (keys: " + strings.Join(keys, ", ") + ")"
	}
	return "a " + goType
}

// pathAt is the dotted path ("jobs.website.cpu", "trusted_principals[0]")
// of the innermost node on line for which match is true, or "".
func pathAt(root *yaml.Node, line int, match func(n *yaml.Node, path string) bool) string {
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		if p := walkChildren(n, path, walk); p != "" {
			return p
		}
		if n.Line == line && path != "" && match(n, path) {
			return path
		}
		return ""
	}
	return walk(root, "")
}

// walkChildren calls walk on each child of n with its path, and returns
// the first path walk returns that is not "".
func walkChildren(n *yaml.Node, path string, walk func(*yaml.Node, string) string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := walk(c, path); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if path != "" {
				k = path + "." + k
			}
			if p := walk(n.Content[i+1], k); p != "" {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p := walk(c, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// syntaxLine finds the line of a syntax error. yaml.v3 reports the line
// before the start of the mapping or list the problem is in (its parser's
// context mark, 0-based), not the problem's own line: a key indented one
// space too far is reported at the line above its mapping's first key, and
// one indented too little at the line above the document's first key. The
// problem's line is the first whose prefix of the document fails with the
// same message: a prefix that ends before it parses (or fails otherwise,
// cut inside a [list]), one that holds it fails alike. A binary search
// from the reported line finds it in a few parses; reported when the whole
// document does not fail with that message.
func syntaxLine(src []byte, reported int, problem string) int {
	lines := bytes.SplitAfter(src, []byte("\n"))
	fails := func(n int) bool {
		var v yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:n], nil), &v)
		if err == nil {
			return false
		}
		m := lineRE.FindStringSubmatch(err.Error())
		return m != nil && m[2] == problem
	}
	lo, hi := max(reported, 1), len(lines)
	if lo > hi || !fails(hi) {
		return reported
	}
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi
}

// indentationProblems are yaml.v3's messages for a line indented unlike
// its neighbours.
var indentationProblems = map[string]bool{
	"did not find expected key":                              true,
	"mapping values are not allowed in this context":         true,
	"did not find expected '-' indicator":                    true,
	"block sequence entries are not allowed in this context": true,
}

// keyRE is a mapping key at the start of a line ("  max_length: 32").
var keyRE = regexp.MustCompile(`^\s*(?:-\s+)?([^\s:#"'{}\[\],&*!|>%@` + "`" + `][^:#]*?|"[^"]*"|'[^']*'):(?:\s|$)`)

// keyAt is the key written at the start of line n of src, or "".
func keyAt(src []byte, n int) string {
	lines := bytes.Split(src, []byte("\n"))
	if n < 1 || n > len(lines) {
		return ""
	}
	if m := keyRE.FindSubmatch(lines[n-1]); m != nil {
		return strings.Trim(string(m[1]), `"'`)
	}
	return ""
}
