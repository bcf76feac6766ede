package runner

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every redacted secret in what goes to the queue.
const Mask = "***"

// MinSecretLength is the shortest secret value that is redacted: shorter
// values ("1", "yes", "dev") would mask ordinary words all over the log.
const MinSecretLength = 4

// contextHoldBack bounds the length of a pattern match (not of a secret
// value): the reader keeps this many bytes of a long line back so that a
// secret that straddles two pieces is still found whole.
const contextHoldBack = 128

// span is a half-open byte range [s, e) to mask.
type span struct{ s, e int }

// Redactor finds secrets in job output: the values of the variables the
// catalogue marks secret, AWS access key ids (AKIA…/ASIA…), and AWS secret
// access keys (40 base64 characters, recognised by an aws_secret_access_key
// style label before them, or on their own when they mix upper and lower
// case, digits and at least one of + and /, so 40-hex git SHAs stay).
type Redactor struct {
	values  [][]byte
	maxLen  int
	labelRE *regexp.Regexp
}

// NewRedactor returns a redactor for the given secret values; values shorter
// than MinSecretLength are ignored. A value with newlines (a PEM key,
// pretty-printed JSON) is registered line by line (see secretLines): output
// is matched one line at a time, so the whole value could never match.
func NewRedactor(values []string) *Redactor {
	r := &Redactor{maxLen: contextHoldBack,
		labelRE: regexp.MustCompile(`(?i)secret_?access_?key["']?[ \t]{0,8}[:=][ \t]{0,8}["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`)}
	seen := map[string]bool{}
	for _, value := range values {
		for _, v := range secretLines(value) {
			if len(v) < MinSecretLength || seen[v] {
				continue
			}
			seen[v] = true
			r.values = append(r.values, []byte(v))
			r.maxLen = max(r.maxLen, len(v))
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(r.values, func(a, b []byte) int { return len(b) - len(a) })
	return r
}

// secretLines is what of a secret value can appear in one line of output:
// the value itself when it has no newline; otherwise each of its lines,
// without the spaces, tabs and '\r' around it (indentation is not secret,
// and a CRLF value printed line by line must still match). The caller drops
// lines shorter than MinSecretLength ("{", "}", a short last line).
func secretLines(v string) []string {
	if !strings.Contains(v, "\n") {
		return []string{v}
	}
	var lines []string
	for _, l := range strings.Split(v, "\n") {
		lines = append(lines, strings.Trim(l, " \t\r"))
	}
	return lines
}

// MaxMatch is the longest match the redactor can make.
func (r *Redactor) MaxMatch() int { return r.maxLen }

// Find appends the spans to mask in p to dst, sorted and not overlapping.
func (r *Redactor) Find(p []byte, dst []span) []span {
	dst = dst[:0]
	for _, v := range r.values {
		for off := 0; ; {
			i := bytes.Index(p[off:], v)
			if i < 0 {
				break
			}
			dst = append(dst, span{off + i, off + i + len(v)})
			off += i + len(v)
		}
	}
	dst = findAccessKeyIDs(p, "AKIA", dst)
	dst = findAccessKeyIDs(p, "ASIA", dst)
	dst = findSecretKeys(p, dst)
	if bytes.Contains(p, []byte("ecret")) || bytes.Contains(p, []byte("ECRET")) {
		for _, m := range r.labelRE.FindAllSubmatchIndex(p, -1) {
			dst = append(dst, span{m[2], m[3]})
		}
	}
	if len(dst) < 2 {
		return dst
	}
	slices.SortFunc(dst, func(a, b span) int { return a.s - b.s })
	out := dst[:1]
	for _, sp := range dst[1:] {
		last := &out[len(out)-1]
		if sp.s <= last.e {
			last.e = max(last.e, sp.e)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// Apply appends p to dst with the spans replaced by Mask.
func Apply(dst, p []byte, spans []span) []byte {
	prev := 0
	for _, sp := range spans {
		dst = append(dst, p[prev:sp.s]...)
		dst = append(dst, Mask...)
		prev = sp.e
	}
	return append(dst, p[prev:]...)
}

func isUpperDigit(c byte) bool { return ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') }

func isAlnum(c byte) bool { return isUpperDigit(c) || ('a' <= c && c <= 'z') }

// findAccessKeyIDs finds prefix followed by 16 of [A-Z0-9], not inside a
// longer word.
func findAccessKeyIDs(p []byte, prefix string, dst []span) []span {
	for off := 0; ; {
		i := bytes.Index(p[off:], []byte(prefix))
		if i < 0 {
			return dst
		}
		s := off + i
		off = s + len(prefix)
		e := s + 20
		if e > len(p) || (s > 0 && isAlnum(p[s-1])) || (e < len(p) && isAlnum(p[e])) {
			continue
		}
		ok := true
		for _, c := range p[s+4 : e] {
			if !isUpperDigit(c) {
				ok = false
				break
			}
		}
		if ok {
			dst = append(dst, span{s, e})
			off = e
		}
	}
}

var b64Class = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isAlnum(byte(c)) || c == '+' || c == '/'
	}
	return t
}()

// findSecretKeys finds runs of exactly 40 base64 characters (not followed by
// '=' padding) that look like a secret access key: upper and lower case,
// a digit, and one to four of '+' and '/' (more looks like a file path).
func findSecretKeys(p []byte, dst []span) []span {
	for i := 0; i < len(p); {
		if !b64Class[p[i]] {
			i++
			continue
		}
		s := i
		for i < len(p) && b64Class[p[i]] {
			i++
		}
		if i-s != 40 || (i < len(p) && p[i] == '=') {
			continue
		}
		var upper, lower, digit bool
		special := 0
		for _, c := range p[s:i] {
			switch {
			case 'A' <= c && c <= 'Z':
				upper = true
			case 'a' <= c && c <= 'z':
				lower = true
			case '0' <= c && c <= '9':
				digit = true
			default:
				special++
			}
		}
		if upper && lower && digit && special >= 1 && special <= 4 && p[s] != '/' {
			dst = append(dst, span{s, i})
		}
	}
	return dst
}
