package trigger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Secret parameters (issue 13.4). A parameter's value is secret, and never
// printed or written by deploy-trigger in any output mode, when:
//
//   - it was given as name@env=VAR: the value is read from the environment
//     variable VAR, so it is not on the command line (ps, shell history, CI
//     logs of the command) either;
//   - --secret NAME (DEPLOY_TRIGGER_SECRET_PARAMS=a,b) names it;
//   - the catalogue given with --catalogue declares it secret: true;
//   - its name says so: it contains token, secret, password, passwd,
//     passphrase, credential, private_key, api_key or apikey.
//
// Where it would be shown, "***" stands instead; in GitHub Actions the
// value is masked with ::add-mask:: before anything else is printed.
var secretWords = []string{"token", "secret", "password", "passwd", "passphrase", "credential", "private_key", "api_key", "apikey"}

// redacted stands for a secret value wherever it would be shown.
const redacted = "***"

// looksSecret reports whether a parameter's name says it holds a secret.
func looksSecret(name string) bool {
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// secretValues are the values of the secret parameters, longest first (so
// that one containing another is replaced whole), empty ones left out.
func secretValues(params map[string]string, secret map[string]bool) []string {
	var vals []string
	for k, v := range params {
		if secret[k] && v != "" {
			vals = append(vals, v)
		}
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	return vals
}

// redactString replaces every secret value in s.
func redactString(s string, vals []string) string {
	for _, v := range vals {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// masker is a printer that can tell its reader to hide values (GitHub's
// ::add-mask::). It is called before anything else is printed.
type masker interface{ mask(values []string) }

// redactingPrinter keeps secret parameter values out of everything a
// printer shows or writes: the target line, the dry-run request, notices,
// the job's output, the result (and so the result file, the GitHub step
// summary and outputs, and the JSON events).
type redactingPrinter struct {
	printer
	names map[string]bool
	vals  []string
	// carry is the end of a stream's last piece, held back because it may
	// begin a secret value that the stream's next piece ends.
	carry map[protocol.Stream][]byte
	last  protocol.Record // the last output record: seq and time for what carry holds
}

// protect makes out hide the secret parameters of cfg. In GitHub mode the
// values are masked first, before any other line.
func (a *app) protect(out printer, cfg *Config) {
	r, ok := out.(*redactingPrinter)
	if !ok {
		return
	}
	r.names = cfg.SecretParams
	r.vals = secretValues(cfg.JobParams, cfg.SecretParams)
	if m, ok := innermostPrinter(r.printer).(masker); ok && len(r.vals) > 0 {
		m.mask(r.vals)
	}
}

func innermostPrinter(p printer) printer {
	for {
		switch q := p.(type) {
		case *resultFilePrinter:
			p = q.printer
		case *redactingPrinter:
			p = q.printer
		default:
			return p
		}
	}
}

func (r *redactingPrinter) params(p map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	out := make(map[string]string, len(p))
	for k, v := range p {
		if r.names[k] {
			v = redacted
		}
		out[k] = v
	}
	return out
}

func (r *redactingPrinter) target(t *Target) {
	c := *t
	c.Params = r.params(t.Params)
	r.printer.target(&c)
}

func (r *redactingPrinter) dryRun(req []byte, identity string) {
	var q protocol.Request
	if len(r.vals) > 0 && json.Unmarshal(req, &q) == nil {
		q.Params = r.params(q.Params)
		if b, err := json.MarshalIndent(&q, "", "  "); err == nil {
			req = b
		}
	}
	r.printer.dryRun([]byte(redactString(string(req), r.vals)), identity)
}

func (r *redactingPrinter) notice(msg string) { r.printer.notice(redactString(msg, r.vals)) }

func (r *redactingPrinter) record(rec protocol.Record) error {
	if len(r.vals) > 0 {
		switch {
		case rec.Type == protocol.TypeOutput && rec.Output != nil:
			rec.Output = r.redactOutput(rec.Output)
			r.last = rec
		case rec.Type == protocol.TypeRejected && rec.Rejected != nil:
			rj := *rec.Rejected
			rj.Reason = redactString(rj.Reason, r.vals)
			rec.Rejected = &rj
		case rec.Type == protocol.TypeExit && rec.Exit != nil:
			if err := r.flush(rec); err != nil {
				return err
			}
			e := *rec.Exit
			e.Message = redactString(e.Message, r.vals)
			rec.Exit = &e
		case rec.Type == protocol.TypeTask && rec.Task != nil:
			tk := *rec.Task
			tk.StoppedReason = redactString(tk.StoppedReason, r.vals)
			rec.Task = &tk
		}
	}
	return r.printer.record(rec)
}

// redactOutput replaces the secret values in the bytes of the job's
// output, text or base64 (bytes that are not UTF-8), also where a value
// is split across pieces of a stream (a long line, or a line written in
// parts): the end of a piece that may begin a value waits for the next piece.
func (r *redactingPrinter) redactOutput(o *protocol.Output) *protocol.Output {
	if r.carry == nil {
		r.carry = map[protocol.Stream][]byte{}
	}
	res := &protocol.Output{Lines: make([]protocol.Line, 0, len(o.Lines))}
	for _, l := range o.Lines {
		b, err := l.Bytes()
		if err != nil {
			// Not readable: the printer skips it with a warning. What was
			// held back goes out first, as it is.
			if c := r.carry[l.Stream]; len(c) > 0 {
				res.Lines = append(res.Lines, withBytes(l, c, true))
				delete(r.carry, l.Stream)
			}
			res.Lines = append(res.Lines, l)
			continue
		}
		if c := r.carry[l.Stream]; len(c) > 0 {
			b = append(c, b...)
			delete(r.carry, l.Stream)
		}
		b = redactBytes(b, r.vals)
		if l.Cont {
			if n := secretPrefixLen(b, r.vals); n > 0 {
				r.carry[l.Stream] = bytes.Clone(b[len(b)-n:])
				b = b[:len(b)-n]
			}
			if len(b) == 0 {
				continue
			}
		}
		res.Lines = append(res.Lines, withBytes(l, b, l.Cont))
	}
	return res
}

// flush prints what is held back, before the exit record (the streams have
// ended) or the result.
func (r *redactingPrinter) flush(at protocol.Record) error {
	if len(r.carry) == 0 {
		return nil
	}
	o := &protocol.Output{}
	for _, s := range []protocol.Stream{protocol.Stdout, protocol.Stderr} {
		if c := r.carry[s]; len(c) > 0 {
			o.Lines = append(o.Lines, withBytes(protocol.Line{Stream: s}, c, true))
		}
	}
	r.carry = nil
	at.Type, at.Output, at.Exit = protocol.TypeOutput, o, nil
	return r.printer.record(at)
}

func withBytes(l protocol.Line, b []byte, cont bool) protocol.Line {
	l.Text, l.B64 = protocol.EncodeText(b)
	l.Cont = cont
	return l
}

// redactBytes replaces every secret value in b.
func redactBytes(b []byte, vals []string) []byte {
	for _, v := range vals {
		b = bytes.ReplaceAll(b, []byte(v), []byte(redacted))
	}
	return b
}

// secretPrefixLen is the length of the longest end of b that begins a
// secret value without holding all of it.
func secretPrefixLen(b []byte, vals []string) int {
	n := 0
	for _, v := range vals {
		for k := min(len(v)-1, len(b)); k > n; k-- {
			if bytes.HasSuffix(b, []byte(v[:k])) {
				n = k
				break
			}
		}
	}
	return n
}

func (r *redactingPrinter) tick(now time.Time) { r.printer.tick(now) }

func (r *redactingPrinter) result(res *Result) {
	if len(r.carry) > 0 {
		_ = r.flush(r.last)
	}
	c := *res
	c.Message = redactString(res.Message, r.vals)
	if res.Err != nil && len(r.vals) > 0 {
		c.Err = fmt.Errorf("%s", redactString(res.Err.Error(), r.vals))
	}
	r.printer.result(&c)
}

// mask prints ::add-mask:: for each value, so that GitHub hides it in the
// whole job's log, whatever prints it later (the job itself included). A
// command ends at the line break, so a value is masked line by line (the
// parameters refuse line breaks, but a line of a value must never reach the
// log unmasked), each line escaped so that the runner, which unescapes a
// command's data, masks the line itself and not "%0A" read as a newline.
func (p *githubPrinter) mask(values []string) {
	for _, v := range values {
		for _, l := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
			fmt.Fprintf(p.stdout, "::add-mask::%s\n", ghEscapeData(l))
		}
	}
}
