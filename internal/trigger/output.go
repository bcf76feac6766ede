package trigger

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/escape"
	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Target is what deploy-trigger is about to do, shown before publishing.
type Target struct {
	Job          string
	Params       map[string]string
	Topic        Topic
	Environment  string // name in the environments file, if any
	Source       string // where the target came from: "environment production from FILE", "topic from --topic-arn"
	Account      string // expected target account id
	AccountAlias string // expected alias, if known
	RunID        string
	Requester    *protocol.Requester
}

// where is "account 123456789012 (prod) in eu-west-1".
func (t *Target) where() string {
	acct := t.Account
	if acct == "" {
		acct = t.Topic.Account
	}
	s := "account " + acct
	if t.AccountAlias != "" {
		s += " (" + t.AccountAlias + ")"
	}
	return s + " in " + t.Topic.Region
}

// source says where the target came from, e.g. "environment production
// from .deploy-trigger.yaml" or "topic from DEPLOY_TRIGGER_TOPIC_ARN".
func (t *Target) source() string {
	switch {
	case t.Source != "":
		return t.Source
	case t.Environment != "":
		return "environment " + t.Environment
	}
	return ""
}

// paramString renders parameters as sorted name=value pairs.
func paramString(p map[string]string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + p[k]
	}
	return strings.Join(parts, " ")
}

// Result is how a run ended.
type Result struct {
	RunID        string
	Job          string
	TaskARN      string
	Account      string
	AccountAlias string
	Region       string
	RequestedBy  string // the verified principal, from the accepted record
	Code         int    // the process exit code
	Outcome      string // succeeded, failed (the job's own non-zero code), or a reserved code's name
	Message      string // one sentence for humans; empty when the job succeeded
	Duration     time.Duration
	Lines        int64
	Bytes        int64
	// Outputs are the job's outputs from the exit record (outputs.go), in
	// the order the job wrote them.
	Outputs []protocol.JobOutput
	Err     error // the error Run returns
}

// printer renders the run for one output mode. The run loop calls it from
// one goroutine, with records already in order.
//
// Adding an output mode touches: a printer in output_<mode>.go; its name in
// the --output enum (cli.go) and in app.modePrinter's switch (run.go); the
// mode in TestGolden's list and switch (output_test.go), whose golden files
// testdata/<mode>-<scenario>.golden "go test ./internal/trigger -run
// TestGolden -update" writes; and docs/TRIGGER.md. The result file
// (output_resultfile.go) is the same for every mode.
type printer interface {
	// target shows what is about to happen, before publishing.
	target(t *Target)
	// request shows the request a dry run would send, and who would send it.
	dryRun(req []byte, identity string)
	// notice is broker chatter: waiting, cancelling, warnings.
	notice(msg string)
	// record shows one feedback record; output records print the job's lines.
	record(r protocol.Record) error
	// tick refreshes anything time-based (the terminal status line).
	tick(now time.Time)
	// result reports the end, once.
	result(r *Result)
}

// lineTime is when the runner read the line.
func lineTime(r protocol.Record, l protocol.Line) time.Time {
	return r.Time.Add(time.Duration(l.Millis) * time.Millisecond)
}

// oneLine makes text from a record or an error safe to print as a line of
// deploy-trigger's own: every character [protocol.IsControl] refuses (line
// breaks, escapes, bidirectional overrides) is shown escaped, as in "\n", so
// that it can neither start a line of its own (a GitHub workflow command)
// nor act on the terminal. The protocol already refuses such characters in
// the records' fields; this is the printers' own guard.
func oneLine(s string) string { return escape.Runes(s, protocol.IsControl) }

// describeRecord is the one-line chatter for a broker record, or "" for
// records that show nothing by themselves.
func describeRecord(r protocol.Record) string {
	switch r.Type {
	case protocol.TypeAccepted:
		a := r.Accepted
		s := "accepted: task " + a.TaskARN + " in account " + a.Account
		if a.AccountAlias != "" {
			s += " (" + a.AccountAlias + ")"
		}
		if a.RequestedBy != "" {
			s += "; requested by " + a.RequestedBy + " (verified)"
		}
		if a.ApprovedBy != "" {
			s += "; approved by " + a.ApprovedBy + " (verified)"
		}
		if a.Start == protocol.StartWarm {
			s += "; on a warm runner"
		}
		return s
	case protocol.TypeTask:
		t := r.Task
		s := "task " + t.Status
		if t.StopCode != "" {
			s += ": " + t.StopCode
		}
		if t.StoppedReason != "" {
			s += ": " + t.StoppedReason
		}
		return s
	case protocol.TypeQueued:
		return describeQueued(r.Queued)
	case protocol.TypeStarted:
		s := "job started"
		if r.Started.HeartbeatSeconds > 0 {
			s += fmt.Sprintf(" (heartbeat every %ds)", r.Started.HeartbeatSeconds)
		}
		return s
	}
	return ""
}

// summary is the final one-liner for a result.
func summary(r *Result) string {
	switch r.Outcome {
	case "succeeded":
		return fmt.Sprintf("job %s succeeded in %s (%s)", r.Job, roundDuration(r.Duration), plural(r.Lines, "line"))
	case "failed":
		return fmt.Sprintf("job %s failed with exit code %d after %s (%s)", r.Job, r.Code, roundDuration(r.Duration), plural(r.Lines, "line"))
	}
	return r.Message
}

// plural is "1 line", "2 lines".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// outcomeName names an exit code for machines.
func outcomeName(code int, jobExit bool) string {
	if jobExit {
		if code == 0 {
			return "succeeded"
		}
		return "failed"
	}
	if n := exitcode.Name(code); n != "" {
		return n
	}
	return "failed"
}

// plainPrinter writes the job's output unchanged (ANSI removed unless
// --color) and broker chatter to stderr as "deploy-trigger: …" lines: what
// Jenkins' console and log files want.
type plainPrinter struct {
	stdout, stderr io.Writer
	color          bool
	timestamps     bool
	atLineStart    map[protocol.Stream]bool
	carry          escapeCarry
}

func newPlainPrinter(stdout, stderr io.Writer, color, timestamps bool) *plainPrinter {
	return &plainPrinter{stdout: stdout, stderr: stderr, color: color, timestamps: timestamps,
		atLineStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
}

func (p *plainPrinter) say(msg string) {
	endLines(p.stdout, p.stderr, p.atLineStart)
	fmt.Fprintf(p.stderr, "deploy-trigger: %s\n", oneLine(msg))
}

// endLines ends a job line left open without a newline (on either stream),
// so that deploy-trigger's own words start a line of their own: with stdout
// and stderr on one console, "…at the end" + "deploy-trigger: job failed"
// would otherwise read as one line.
func endLines(stdout, stderr io.Writer, atStart map[protocol.Stream]bool) {
	for _, s := range []protocol.Stream{protocol.Stdout, protocol.Stderr} {
		if !atStart[s] {
			w := stdout
			if s == protocol.Stderr {
				w = stderr
			}
			io.WriteString(w, "\n")
			atStart[s] = true
		}
	}
}

func (p *plainPrinter) target(t *Target) {
	s := "job " + t.Job
	if len(t.Params) > 0 {
		s += " " + paramString(t.Params)
	}
	s += " → " + t.where() + " via topic " + t.Topic.Name
	if src := t.source(); src != "" {
		s += " (" + src + ")"
	}
	p.say(s)
}

func (p *plainPrinter) dryRun(req []byte, identity string) {
	p.say("dry run: would publish as " + identity + ":")
	fmt.Fprintf(p.stdout, "%s\n", req)
}

func (p *plainPrinter) notice(msg string) { p.say(msg) }

func (p *plainPrinter) record(r protocol.Record) error {
	if r.Type != protocol.TypeOutput {
		if s := describeRecord(r); s != "" {
			p.say(s)
		}
		return nil
	}
	for _, l := range r.Output.Lines {
		if err := writeLine(l, r, p.stdout, p.stderr, p.atLineStart, &p.carry, p.color, p.timestamps); err != nil {
			return err
		}
	}
	return nil
}

// writeLine writes one line piece to its stream: optional timestamp at the
// start of a line, ANSI removed unless color (an escape sequence split
// between pieces is held in carry until it is whole), '\n' unless the piece
// continues.
func writeLine(l protocol.Line, r protocol.Record, stdout, stderr io.Writer, atStart map[protocol.Stream]bool, carry *escapeCarry, color, timestamps bool) error {
	if ok, err := writePlainLine(l, r, stdout, stderr, atStart, carry, timestamps); ok {
		return err
	}
	buf, err := cleanLine(l, r, atStart, carry, color, timestamps)
	if err != nil {
		return err
	}
	w := stdout
	if l.Stream == protocol.Stderr {
		w = stderr
	}
	_, err = w.Write(buf)
	return err
}

// cleanLine is what writeLine writes for l when it is not plain text, and
// what its plain path must write too
// (TestWriteLineFastPathPrintsWhatCleaningWould): l's bytes through the
// stream's escape carry, after the line's time when it starts a line and
// timestamps are on, with a newline unless it continues.
func cleanLine(l protocol.Line, r protocol.Record, atStart map[protocol.Stream]bool, carry *escapeCarry, color, timestamps bool) ([]byte, error) {
	b, err := l.Bytes()
	if err != nil {
		return nil, fmt.Errorf("runner record %d: %w", r.Seq, err)
	}
	b = carry.clean(l.Stream, b, color, !l.Cont)
	var buf []byte
	if timestamps && atStart[l.Stream] {
		buf = append(buf, lineTime(r, l).UTC().Format("2006-01-02T15:04:05.000Z ")...)
	}
	buf = append(buf, b...)
	if !l.Cont {
		buf = append(buf, '\n')
	}
	atStart[l.Stream] = !l.Cont
	return buf, nil
}

func (p *plainPrinter) tick(time.Time) {}

func (p *plainPrinter) result(r *Result) {
	if r.Outcome == "succeeded" || r.Outcome == "failed" {
		p.say(summary(r))
		return
	}
	p.say("error: " + r.Message)
}
