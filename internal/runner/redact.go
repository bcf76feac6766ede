package runner

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Mask replaces every redacted secret in what goes to the queue.
const Mask = "***"

// MinSecretLength is the shortest secret value that is redacted: shorter
// values ("1", "yes", "dev") would mask ordinary words all over the log.
const MinSecretLength = 4

// contextHoldBack bounds how much of a pattern match (not of a secret value)
// must be seen to recognise it: the reader keeps this many bytes of a long
// line back so that a secret that straddles two pieces is recognised before
// the cut and moved whole into the next piece. Every pattern is recognised
// within its first 160 bytes (a labelled session token: label, separator
// and minSessionToken characters).
const contextHoldBack = 160

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
	tokenRE *regexp.Regexp
}

// NewRedactor returns a redactor for the given secret values; values shorter
// than MinSecretLength are ignored. A value with newlines (a PEM key,
// pretty-printed JSON) is registered line by line (see secretLines): output
// is matched one line at a time, so the whole value could never match. A
// JSON value (a Secrets Manager secret of key/value pairs) is registered
// whole and by every string leaf, at any depth: a job builds
// "postgres://app:S3cr3t@db" from {"username":"app","password":"S3cr3t"}
// and prints that, never the JSON. Every registered value is also
// registered in the forms a job most often prints it in: URL-encoded (in a
// connection string or query) and JSON-escaped (inside a JSON string).
func NewRedactor(values []string) *Redactor {
	r := &Redactor{maxLen: contextHoldBack,
		labelRE: regexp.MustCompile(`(?i)secret_?access_?key["']?[ \t]{0,8}[:=][ \t]{0,8}["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`),
		tokenRE: sessionTokenLabelRE}
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) < MinSecretLength || seen[v] {
			return
		}
		seen[v] = true
		r.values = append(r.values, []byte(v))
		r.maxLen = max(r.maxLen, len(v))
	}
	for _, value := range values {
		var forms []string
		forms = append(forms, secretLines(value)...)
		forms = append(forms, jsonLeaves(value)...)
		for _, v := range forms {
			add(v)
			for _, d := range derivedForms(v) {
				add(d)
			}
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

// jsonLeaves is every string leaf of v if v is a JSON object or array, at
// any depth (split into lines like a value); nil otherwise. Numbers are not
// registered: a port or a count would be masked all over the output.
func jsonLeaves(v string) []string {
	t := strings.TrimSpace(v)
	if len(t) < 2 || (t[0] != '{' && t[0] != '[') {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(t))
	var doc any
	if err := d.Decode(&doc); err != nil || d.More() {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case string:
			out = append(out, secretLines(x)...)
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

// derivedForms are the ways v is printed other than as itself: URL-encoded
// (query and path escaping) and JSON-escaped, where they differ from v.
func derivedForms(v string) []string {
	var out []string
	for _, d := range []string{url.QueryEscape(v), url.PathEscape(v), jsonEscaped(v)} {
		if d != v && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// jsonEscaped is v as it appears between the quotes of a JSON string.
func jsonEscaped(v string) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) < 2 {
		return v
	}
	return string(b[1 : len(b)-1])
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
	dst = findSessionTokens(p, dst)
	if bytes.Contains(p, []byte("ecret")) || bytes.Contains(p, []byte("ECRET")) {
		for _, m := range r.labelRE.FindAllSubmatchIndex(p, -1) {
			dst = append(dst, span{m[2], m[3]})
		}
	}
	if bytes.Contains(p, []byte("oken")) || bytes.Contains(p, []byte("OKEN")) {
		for _, m := range r.tokenRE.FindAllSubmatchIndex(p, -1) {
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
// '=' padding) that look like a secret access key (LooksLikeSecretKey). A
// leading '/' is no reason to skip one: 1 in 64 keys starts with it.
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
		if LooksLikeSecretKey(p[s:i]) {
			dst = append(dst, span{s, i})
		}
	}
	return dst
}

// LooksLikeSecretKey reports whether 40 base64 characters look like an AWS
// secret access key, which is 30 random bytes in base64:
//
//   - upper and lower case, and not only hex digits (a git SHA, in either
//     case, is not a key);
//   - a digit, or a '+' or '/' (a CamelCase identifier has neither; a
//     random key lacks both in 1 of 4,000);
//   - at most six of '+' and '/' (more looks like a file path; a random key
//     has 1.25 on average and more than six in about 1 of 20,000);
//   - not ending in eight upper-case hex digits (the hash suffix of a
//     CloudFormation logical id such as ApiGatewayDeploymentStageProd4A1B2C3D;
//     a random key ends so in 1 of 65,000).
//
// Earlier versions required a '+' or '/', which 28% of random keys lack.
// The miss rate on random keys and the false-positive rate on realistic
// deploy output are measured in docs/BENCHMARKS.md.
func LooksLikeSecretKey(k []byte) bool {
	var upper, lower, digit, nonHex bool
	special := 0
	for _, c := range k {
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
			nonHex = nonHex || c > 'F'
		case 'a' <= c && c <= 'z':
			lower = true
			nonHex = nonHex || c > 'f'
		case '0' <= c && c <= '9':
			digit = true
		default:
			special++
		}
	}
	if !upper || !lower || !nonHex || (!digit && special == 0) || special > 6 {
		return false
	}
	for _, c := range k[len(k)-8:] {
		if !('0' <= c && c <= '9') && !('A' <= c && c <= 'F') {
			return true
		}
	}
	return false
}

// sessionTokenLabelRE finds a session token of any format by its label
// (aws_session_token=, "SessionToken": , AWS_SECURITY_TOKEN: …).
var sessionTokenLabelRE = regexp.MustCompile(`(?i)(?:session_?token|security_?token)["']?[ \t]{0,8}[:=][ \t]{0,8}["']?([A-Za-z0-9/+]{` + strconv.Itoa(minSessionToken) + `,}=*)(?:[^A-Za-z0-9/+=]|$)`)

// Session tokens (STS, task and instance credentials) are base64 of several
// hundred bytes whose first bytes are always the same per token format.
const minSessionToken = 100

// sessionTokenPrefixes begin the known session token formats: "IQoJb3JpZ2lu"
// ("!\n\torigin", current STS), "FwoGZXIvYXdz" and "FQoGZXIvYXdz"
// ("…er/aws", older), "AQoDYXdz" and "FQoDYXdz" ("…aws", oldest).
var sessionTokenPrefixes = [][]byte{
	[]byte("IQoJb3JpZ2lu"), []byte("FwoGZXIvYXdz"), []byte("FQoGZXIvYXdz"), []byte("AQoDYXdz"), []byte("FQoDYXdz"),
}

// findSessionTokens finds a known session token prefix, not inside a longer
// base64 run, followed by base64 characters (and '=' padding) to at least
// minSessionToken in all. Tokens of other formats are found by their label
// (sessionTokenLabelRE). All prefixes but "FwoG…" have 'Q', rare in text,
// as their second byte: one IndexByte scan finds those candidates.
func findSessionTokens(p []byte, dst []span) []span {
	token := func(s int) int {
		if s < 0 || (s > 0 && b64Class[p[s-1]]) {
			return -1
		}
		e := s
		for e < len(p) && b64Class[p[e]] {
			e++
		}
		for e < len(p) && p[e] == '=' {
			e++
		}
		if e-s < minSessionToken {
			return -1
		}
		dst = append(dst, span{s, e})
		return e
	}
	for off := 0; ; {
		i := bytes.IndexByte(p[off:], 'Q')
		if i < 0 {
			break
		}
		s := off + i - 1
		off += i + 1
		for _, prefix := range sessionTokenPrefixes {
			if prefix[1] == 'Q' && s >= 0 && bytes.HasPrefix(p[s:], prefix) {
				if e := token(s); e > 0 {
					off = e
				}
				break
			}
		}
	}
	for off := 0; ; {
		i := bytes.Index(p[off:], sessionTokenPrefixes[1])
		if i < 0 {
			return dst
		}
		s := off + i
		off = s + 1
		if e := token(s); e > 0 {
			off = e
		}
	}
}
