package trigger

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// githubPrinter is for GitHub Actions (GITHUB_ACTIONS=true): broker chatter
// inside a collapsed ::group::, the job's output between ::stop-commands::
// markers (so nothing the job prints can act as a workflow command),
// ::error:: on failure, a summary table in $GITHUB_STEP_SUMMARY and run-id,
// exit-code, outcome and task-arn in $GITHUB_OUTPUT.
type githubPrinter struct {
	stdout, stderr io.Writer
	outputPath     string
	summaryPath    string
	token          string
	atLineStart    map[protocol.Stream]bool
	carry          escapeCarry
	color          bool // keep the job's colours (--color, NO_COLOR)
	timestamps     bool // --timestamps
	grouped        bool // inside ::group::
	stopped        bool // inside ::stop-commands::
	tgt            *Target
}

func newGithubPrinter(stdout, stderr io.Writer, outputPath, summaryPath, token string) *githubPrinter {
	return &githubPrinter{stdout: stdout, stderr: stderr, outputPath: outputPath, summaryPath: summaryPath, token: token, color: true,
		atLineStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
}

// say prints a line of deploy-trigger's own. oneLine keeps it one line, so
// that no text from a record or an error can start a workflow command.
func (p *githubPrinter) say(msg string) { fmt.Fprintf(p.stdout, "deploy-trigger: %s\n", oneLine(msg)) }

// commands makes sure workflow commands are on: resume after the job's output.
func (p *githubPrinter) commands() {
	if p.stopped {
		p.endLine()
		fmt.Fprintf(p.stdout, "::%s::\n", p.token)
		p.stopped = false
	}
}

// endLine finishes a job line left open without a newline, so that a
// command starts a line of its own.
func (p *githubPrinter) endLine() {
	for _, s := range []protocol.Stream{protocol.Stdout, protocol.Stderr} {
		if !p.atLineStart[s] {
			w := p.stdout
			if s == protocol.Stderr {
				w = p.stderr
			}
			io.WriteString(w, "\n")
			p.atLineStart[s] = true
		}
	}
}

func (p *githubPrinter) endGroup() {
	p.commands()
	if p.grouped {
		fmt.Fprintln(p.stdout, "::endgroup::")
		p.grouped = false
	}
}

func (p *githubPrinter) target(t *Target) {
	p.tgt = t
	where := t.where()
	if src := t.source(); src != "" {
		where += ", " + src
	}
	fmt.Fprintf(p.stdout, "::group::deploy-trigger: %s → %s\n", ghEscapeData(t.Job), ghEscapeData(where))
	p.grouped = true
	if len(t.Params) > 0 {
		p.say("parameters: " + paramString(t.Params))
	}
	p.say("topic " + t.Topic.ARN)
}

func (p *githubPrinter) dryRun(req []byte, identity string) {
	p.say("dry run: would publish as " + identity + ":")
	fmt.Fprintf(p.stdout, "%s\n", req)
}

func (p *githubPrinter) notice(msg string) {
	if strings.HasPrefix(msg, "warning: ") {
		p.commands()
		fmt.Fprintf(p.stdout, "::warning title=deploy-trigger::%s\n", ghEscapeData(strings.TrimPrefix(msg, "warning: ")))
		return
	}
	p.endLine()
	p.say(msg)
}

func (p *githubPrinter) record(r protocol.Record) error {
	switch r.Type {
	case protocol.TypeOutput:
		if !p.stopped {
			p.endGroup()
			fmt.Fprintf(p.stdout, "::stop-commands::%s\n", p.token)
			p.stopped = true
		}
		for _, l := range r.Output.Lines {
			if err := writeLine(l, r, p.stdout, p.stderr, p.atLineStart, &p.carry, p.color, p.timestamps); err != nil {
				return err
			}
		}
		return nil
	case protocol.TypeStarted:
		p.say(describeRecord(r))
		p.endGroup()
		return nil
	}
	if s := describeRecord(r); s != "" {
		p.endLine()
		p.say(s)
	}
	return nil
}

func (p *githubPrinter) tick(time.Time) {}

func (p *githubPrinter) result(r *Result) {
	p.endGroup()
	switch r.Outcome {
	case "succeeded":
		p.say(summary(r))
	case "failed":
		fmt.Fprintf(p.stdout, "::error title=deploy-trigger::%s\n", ghEscapeData(summary(r)))
	default:
		fmt.Fprintf(p.stdout, "::error title=deploy-trigger %s::%s\n", ghEscapeProperty(r.Outcome), ghEscapeData(r.Message))
	}
	if p.outputPath != "" {
		out, warnings := githubOutputs(r, randomDelimiter)
		for _, w := range warnings {
			fmt.Fprintf(p.stdout, "::warning title=deploy-trigger::%s\n", ghEscapeData(w))
		}
		if err := appendFile(p.outputPath, out); err != nil {
			fmt.Fprintf(p.stderr, "deploy-trigger: could not write GITHUB_OUTPUT: %v\n", err)
		}
	}
	if p.summaryPath != "" && r.RunID != "" {
		if err := appendFile(p.summaryPath, p.summaryTable(r)); err != nil {
			fmt.Fprintf(p.stderr, "deploy-trigger: could not write GITHUB_STEP_SUMMARY: %v\n", err)
		}
	}
}

func (p *githubPrinter) summaryTable(r *Result) string {
	var b strings.Builder
	icon := "❌"
	if r.Outcome == "succeeded" {
		icon = "✅"
	}
	fmt.Fprintf(&b, "### %s deploy-trigger: %s\n\n", icon, mdCell(r.Job))
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, v)
		}
	}
	outcome := r.Outcome
	if r.Outcome != "succeeded" {
		outcome += fmt.Sprintf(" (exit code %d)", r.Code)
	}
	row("Outcome", mdCell(outcome))
	if r.Message != "" {
		row("Reason", mdCell(r.Message))
	}
	row("Run id", "`"+mdCell(r.RunID)+"`")
	if p.tgt != nil && len(p.tgt.Params) > 0 {
		row("Parameters", "`"+mdCell(paramString(p.tgt.Params))+"`")
	}
	acct := r.Account
	if r.AccountAlias != "" {
		acct += " (" + r.AccountAlias + ")"
	}
	row("Account", mdCell(acct))
	row("Region", mdCell(r.Region))
	if p.tgt != nil && p.tgt.Environment != "" {
		row("Environment", mdCell(p.tgt.Environment))
	}
	if r.TaskARN != "" {
		row("Task", "`"+mdCell(r.TaskARN)+"`")
	}
	if r.RequestedBy != "" {
		row("Requested by", "`"+mdCell(r.RequestedBy)+"` (verified)")
	}
	if r.Duration > 0 {
		row("Duration", roundDuration(r.Duration).String())
	}
	row("Lines", fmt.Sprint(r.Lines))
	b.WriteString("\n")
	return b.String()
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ghEscapeData escapes a workflow command's message.
func ghEscapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghEscapeProperty escapes a workflow command's property value.
func ghEscapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "\r", " ", "`", "'").Replace(s)
}
