package trigger

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
)

// confirmation applies an environment's "confirm: true": with --yes it
// says the question was skipped; without a terminal it refuses (248), as
// terraform apply does without -auto-approve, since nobody can answer; on a
// terminal it asks.
func (a *app) confirmation(ctx context.Context, out printer, cfg *Config, t *Target) error {
	switch {
	case cfg.Yes:
		out.notice("environment " + cfg.Env + " asks for confirmation: skipped (--yes)")
		return nil
	case !a.stdinTTY:
		return exitcode.Errorf(exitcode.Safety, "environment %s asks for confirmation (confirm: true), but stdin is not a terminal: pass --yes (or DEPLOY_TRIGGER_YES=true) to run it without asking; nothing was published", cfg.Env)
	}
	return a.confirm(ctx, t)
}

// confirm asks on the terminal whether to go ahead.
func (a *app) confirm(ctx context.Context, t *Target) error {
	return a.askYes(ctx, fmt.Sprintf("Run job %s in %s?", t.Job, t.where()), "nothing was published")
}

// askYes asks question on the terminal; anything but yes (or y) refuses
// with 248, saying nothing (e.g. "nothing was published") happened.
func (a *app) askYes(ctx context.Context, question, nothing string) error {
	fmt.Fprintf(a.stderr, "%s Type yes to continue: ", question)
	line, stopped, err := a.readAnswer(ctx)
	if stopped != "" {
		return exitcode.Errorf(exitcode.Safety, "not confirmed: %s; %s", stopped, nothing)
	}
	if err != nil && line == "" {
		return exitcode.Errorf(exitcode.Safety, "no confirmation: stdin closed before an answer; %s", nothing)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return exitcode.Errorf(exitcode.Safety, "not confirmed: %s (pass --yes to skip the question)", nothing)
}

// readAnswer reads the line that answers a prompt just written to stderr.
// The line is read in the background so that Ctrl-C (or SIGTERM, or the
// context ending) stops the prompt at once instead of waiting for Enter:
// then stopped says why ("interrupt at the prompt", "context canceled")
// and line and err are empty.
func (a *app) readAnswer(ctx context.Context) (line, stopped string, err error) {
	a.flush()
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := a.in.ReadString('\n')
		ch <- answer{line, err}
	}()
	signals := a.signals
	if a.watching.Load() {
		signals = nil // the watch loop's: it cancels the run
	}
	select {
	case ans := <-ch:
		return ans.line, "", ans.err
	case sig := <-signals:
		fmt.Fprintln(a.stderr)
		return "", fmt.Sprintf("%v at the prompt", sig), nil
	case <-ctx.Done():
		fmt.Fprintln(a.stderr)
		return "", ctx.Err().Error(), nil
	}
}
