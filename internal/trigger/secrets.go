package trigger

import (
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
			o := *rec.Output
			o.Lines = make([]protocol.Line, len(rec.Output.Lines))
			for i, l := range rec.Output.Lines {
				if l.B64 == "" {
					l.Text = redactString(l.Text, r.vals)
				}
				o.Lines[i] = l
			}
			rec.Output = &o
		case rec.Type == protocol.TypeRejected && rec.Rejected != nil:
			rj := *rec.Rejected
			rj.Reason = redactString(rj.Reason, r.vals)
			rec.Rejected = &rj
		case rec.Type == protocol.TypeExit && rec.Exit != nil:
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

func (r *redactingPrinter) tick(now time.Time) { r.printer.tick(now) }

func (r *redactingPrinter) result(res *Result) {
	c := *res
	c.Message = redactString(res.Message, r.vals)
	if res.Err != nil && len(r.vals) > 0 {
		c.Err = fmt.Errorf("%s", redactString(res.Err.Error(), r.vals))
	}
	r.printer.result(&c)
}

// mask prints ::add-mask:: for each value, so that GitHub hides it in the
// whole job's log, whatever prints it later (the job itself included).
func (p *githubPrinter) mask(values []string) {
	for _, v := range values {
		fmt.Fprintf(p.stdout, "::add-mask::%s\n", v)
	}
}
