package trigger

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// terminalPrinter is for a person at a terminal: while the run is starting
// (or stopping) a status line on stderr shows the task's lifecycle —
// waiting, accepted, provisioning, pending, running — and how long it has
// taken; the job's output, colours included, replaces it once the job runs.
type terminalPrinter struct {
	stdout, stderr io.Writer
	color          bool // colours, deploy-trigger's and the job's (--color, NO_COLOR)
	timestamps     bool // --timestamps
	atLineStart    map[protocol.Stream]bool
	carry          escapeCarry

	job     string
	phase   string
	since   time.Time
	frame   int
	shown   bool // the status line is on screen
	running bool // the job is running: no status line
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newTerminalPrinter(stdout, stderr io.Writer, color bool) *terminalPrinter {
	return &terminalPrinter{stdout: stdout, stderr: stderr, color: color, phase: "waiting for the broker",
		atLineStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
}

func (p *terminalPrinter) clear() {
	if p.shown {
		io.WriteString(p.stderr, "\r\x1b[K")
		p.shown = false
	}
}

func (p *terminalPrinter) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p *terminalPrinter) say(msg string) {
	p.clear()
	endLines(p.stdout, p.stderr, p.atLineStart)
	fmt.Fprintf(p.stderr, "%s %s\n", p.paint("36", "▸"), p.paint("2", oneLine(msg)))
}

func (p *terminalPrinter) target(t *Target) {
	p.job = t.Job
	p.clear()
	s := p.paint("1", t.Job)
	if len(t.Params) > 0 {
		s += " " + paramString(t.Params)
	}
	s += " → " + p.paint("1", t.where())
	if src := t.source(); src != "" {
		s += " (" + src + ")"
	}
	fmt.Fprintf(p.stderr, "%s %s\n", p.paint("36", "▸"), s)
}

func (p *terminalPrinter) dryRun(req []byte, identity string) {
	p.say("dry run: would publish as " + identity + ":")
	fmt.Fprintf(p.stdout, "%s\n", req)
}

func (p *terminalPrinter) notice(msg string) {
	if strings.Contains(msg, "cancelling run") {
		p.phase, p.running = "cancelling", false
	}
	p.say(msg)
}

func (p *terminalPrinter) record(r protocol.Record) error {
	switch r.Type {
	case protocol.TypeOutput:
		p.clear()
		for _, l := range r.Output.Lines {
			if err := writeLine(l, r, p.stdout, p.stderr, p.atLineStart, &p.carry, p.color, p.timestamps); err != nil {
				return err
			}
		}
		return nil
	case protocol.TypeAccepted:
		p.phase = "accepted"
	case protocol.TypeTask:
		if p.phase != "cancelling" {
			p.phase = strings.ToLower(r.Task.Status)
		}
		if r.Task.Status != "STOPPED" {
			return nil // shown by the status line only
		}
	case protocol.TypeStarted:
		p.running = true
	case protocol.TypeHeartbeat, protocol.TypeExit:
		return nil
	}
	if s := describeRecord(r); s != "" {
		p.say(s)
	}
	return nil
}

func (p *terminalPrinter) tick(now time.Time) {
	if p.since.IsZero() {
		p.since = now
	}
	if p.running || !p.atLineStart[protocol.Stdout] || !p.atLineStart[protocol.Stderr] {
		return
	}
	p.frame = (p.frame + 1) % len(spinner)
	el := now.Sub(p.since).Truncate(time.Second)
	fmt.Fprintf(p.stderr, "\r\x1b[K%s %s · %s · %s", p.paint("36", spinner[p.frame]), p.job, oneLine(p.phase), el)
	p.shown = true
}

func (p *terminalPrinter) result(r *Result) {
	p.clear()
	endLines(p.stdout, p.stderr, p.atLineStart)
	switch r.Outcome {
	case "succeeded":
		fmt.Fprintf(p.stderr, "%s %s\n", p.paint("32", "✔"), summary(r))
	case "failed":
		fmt.Fprintf(p.stderr, "%s %s\n", p.paint("31", "✘"), summary(r))
	default:
		fmt.Fprintf(p.stderr, "%s %s\n", p.paint("31", "✘"), p.paint("1", "error: ")+oneLine(r.Message))
	}
}
