package trigger

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// ReservedCommands are the words deploy-trigger reads as its own commands
// where a job name would stand: "deploy-trigger help" prints the help and
// publishes nothing. The catalogue may not name a job after one of them
// (internal/config checks it).
var ReservedCommands = protocol.ReservedJobNames

// isCommand reports whether a job name is one of deploy-trigger's commands.
func isCommand(job string) bool { return slices.Contains(ReservedCommands, job) }

// commandSpec is one command: its declaration (protocol.TriggerCommands)
// and the flags it takes.
type commandSpec struct {
	protocol.TriggerCommand
	// own returns the command's own flags (a kong struct): the command comes
	// first and is parsed on its own (runs, show: cmd_runs.go; logs,
	// attach: cmd_logs.go). Without it the command is read where a job name
	// would stand, with the run's flags named in runFlags.
	own      func() any
	runFlags []string
}

// decisionFlags are the run's flags approve and reject use: where the
// broker is and who is asking.
var decisionFlags = []string{"env", "environments", "topic-arn", "expect-account", "profile", "role-arn", "external-id", "session-name", "output", "request-ttl",
	"ledger-table", "reader-role-arn", "yes", "queue-timeout"}

// cancelFlags are the run's flags cancel uses: a decision's, and how long
// to wait for the run to stop.
var cancelFlags = append(slices.DeleteFunc(slices.Clone(decisionFlags), func(f string) bool { return f == "yes" }), "cancel-grace")

// commandFlags adds each declared command's flags; a test checks that it
// names exactly the commands of protocol.TriggerCommands.
var commandFlags = map[string]commandSpec{
	"help":       {},
	"version":    {},
	"completion": {},
	"jobs":       {runFlags: []string{"env", "environments", "topic-arn", "expect-account", "profile", "role-arn", "external-id", "catalogue"}},
	"runs":       {own: func() any { return &runsCLI{} }},
	"show":       {own: func() any { return &showCLI{} }},
	"logs":       {own: func() any { return &logsCLI{} }},
	"attach":     {own: func() any { return &logsCLI{} }},
	"approve":    {runFlags: decisionFlags},
	"reject":     {runFlags: decisionFlags},
	"cancel":     {runFlags: cancelFlags},
}

// commands are deploy-trigger's commands in their declared order.
func commands() []commandSpec {
	out := make([]commandSpec, 0, len(protocol.TriggerCommands))
	for _, c := range protocol.TriggerCommands {
		spec := commandFlags[c.Name]
		spec.TriggerCommand = c
		out = append(out, spec)
	}
	return out
}

// commandNamed returns the command called name.
func commandNamed(name string) (commandSpec, bool) {
	for _, c := range commands() {
		if c.Name == name {
			return c, true
		}
	}
	return commandSpec{}, false
}

// commandsHelp is the Commands part of --help.
func commandsHelp() string {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-24s  %s\n", strings.TrimSpace(c.Name+" "+c.Args), c.Summary)
	}
	return b.String()
}

// commandFlagsFirst finds a command that is read before the run's flags:
// one with its own flags (runs, show, logs, attach), or any command asked
// for its own help ("deploy-trigger approve --help").
func commandFlagsFirst(args []string) (commandSpec, bool) {
	if len(args) == 0 {
		return commandSpec{}, false
	}
	c, ok := commandNamed(args[0])
	if !ok || (c.own == nil && !wantsHelp(args[1:])) {
		return commandSpec{}, false
	}
	return c, true
}

// wantsHelp says args ask for help (--help or -h before a "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--help" || a == "-h" {
			return true
		}
	}
	return false
}

// commandHelp prints the help of a command read where a job name would
// stand (the others' help is kong's, of their own flags).
func commandHelp(w io.Writer, c commandSpec) {
	usage := strings.TrimSpace(c.Name + " " + c.Args)
	if len(c.runFlags) > 0 {
		usage += " [flags]"
	}
	fmt.Fprintf(w, "Usage: deploy-trigger %s\n\n%s.\n", usage, strings.ToUpper(c.Summary[:1])+c.Summary[1:])
	if len(c.runFlags) == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags (as for a run, see deploy-trigger --help):")
	for _, f := range runFlagModel() {
		if !slices.Contains(c.runFlags, f.Name) {
			continue
		}
		env := ""
		if len(f.Envs) > 0 {
			env = " ($" + f.Envs[0] + ")"
		}
		fmt.Fprintf(w, "  --%-18s %s%s\n", f.Name, f.Help, env)
	}
}

// runFlagModel is the run's flags as kong reads them from CLI.
func runFlagModel() []*kong.Flag {
	p, err := kong.New(&CLI{}, kong.Name("deploy-trigger"), cliVars(), kong.Exit(func(int) {}))
	if err != nil {
		return nil
	}
	return p.Model.Flags
}

// commandFlagNames are the long flags a command takes (without "--").
func commandFlagNames(c commandSpec) []string {
	if c.own == nil {
		return c.runFlags
	}
	p, err := kong.New(c.own(), kong.Name("deploy-trigger "+c.Name), cliVars(), kong.Exit(func(int) {}))
	if err != nil {
		return nil
	}
	var names []string
	for _, f := range p.Model.Flags {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	return names
}

// command runs deploy-trigger's own commands: help, version, completion,
// jobs. It reports handled=false for a job name.
func (a *app) command(ctx context.Context, cli *CLI) (handled bool, err error) {
	if c, ok := commandNamed(cli.Job); ok && c.own != nil {
		// Read before the run's flags (run.go), so they come first.
		return true, fmt.Errorf("%s takes its own flags: put it first, e.g. deploy-trigger %s --env production … (see deploy-trigger %s --help)", cli.Job, cli.Job, cli.Job)
	}
	switch cli.Job {
	case "approve", "reject", "cancel": // with one run id, decide (approve.go) took it
		return true, fmt.Errorf("%s takes one run id (a ULID): deploy-trigger %s RUN_ID (see deploy-trigger %s --help)", cli.Job, cli.Job, cli.Job)
	case "jobs":
		if len(cli.Params) > 0 {
			return true, fmt.Errorf("jobs takes no arguments")
		}
		if cli.Catalogue == "" && cli.Env == "" && cli.TopicARN == "" {
			return true, fmt.Errorf("jobs lists the jobs of the broker given with --env NAME or --topic-arn ARN (its published catalogue), or of a configuration file with --catalogue FILE, e.g. deploy-trigger jobs --env production")
		}
		if cli.Catalogue == "" {
			return true, a.deployedJobs(ctx, cli) // discovery.go
		}
		cat, err := config.Load(cli.Catalogue)
		if err != nil {
			return true, err
		}
		writeJobs(a.stdout, cat)
		return true, nil
	case "help":
		if len(cli.Params) > 0 {
			return true, fmt.Errorf("help takes no arguments (for a job's parameters, see deploy-trigger jobs)")
		}
		_, err := parseCLI([]string{"--help"}, a.getenv, a.stdout, a.stderr)
		return true, ignoreShown(err)
	case "version":
		if len(cli.Params) > 0 {
			return true, fmt.Errorf("version takes no arguments")
		}
		_, err := parseCLI([]string{"--version"}, a.getenv, a.stdout, a.stderr)
		return true, ignoreShown(err)
	case "completion":
		if len(cli.Params) == 1 && (cli.Params[0] == completeJobs || cli.Params[0] == completeEnvs) {
			completionNames(a.stdout, cli, a.getenv, cli.Params[0])
			return true, nil
		}
		if len(cli.Params) != 1 {
			return true, fmt.Errorf("completion needs one shell: deploy-trigger completion bash|zsh|fish")
		}
		return true, writeCompletion(a.stdout, cli.Params[0])
	}
	return false, nil
}

func ignoreShown(err error) error {
	if err == errHelpShown {
		return nil
	}
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeJobs lists the catalogue's jobs and their parameters: name,
// description, and each parameter's type, constraints, default and whether
// it is required or secret.
func writeJobs(w io.Writer, cat *config.Config) {
	for i, name := range cat.JobNames() {
		j := cat.Jobs[name]
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s", name)
		if j.Description != "" {
			fmt.Fprintf(w, " — %s", j.Description)
		}
		fmt.Fprintf(w, " (timeout %s)\n", j.Timeout.D())
		if len(j.Approvers) > 0 {
			fmt.Fprintf(w, "  needs approval by one of %s\n", strings.Join(j.Approvers, ", "))
		}
		if j.Limited() {
			slots := "job " + name
			if j.ConcurrencyGroup != "" {
				slots = "concurrency group " + j.ConcurrencyGroup
			}
			fmt.Fprintf(w, "  %d slot(s) of %s; when all are held: %s\n", j.Concurrency, slots, j.WhenFull())
		}
		if len(j.Params) == 0 {
			fmt.Fprintln(w, "  no parameters")
		}
		for _, pn := range sortedKeys(j.Params) {
			p := j.Params[pn]
			var facts []string
			switch p.Type {
			case config.TypeString:
				if p.Pattern != "" {
					facts = append(facts, "pattern "+p.Pattern)
				}
				if len(p.Values) > 0 {
					facts = append(facts, "one of "+strings.Join(p.Values, ", "))
				}
				if p.MaxLength > 0 {
					facts = append(facts, fmt.Sprintf("at most %d characters", p.MaxLength))
				}
			case config.TypeEnum:
				facts = append(facts, "one of "+strings.Join(p.Values, ", "))
			case config.TypeInt:
				if p.Min != nil {
					facts = append(facts, fmt.Sprintf("min %d", *p.Min))
				}
				if p.Max != nil {
					facts = append(facts, fmt.Sprintf("max %d", *p.Max))
				}
			}
			switch {
			case p.Required:
				facts = append(facts, "required")
			case p.Default != nil && p.Secret:
				facts = append(facts, "has a default")
			case p.Default != nil:
				facts = append(facts, fmt.Sprintf("default %q", *p.Default))
			}
			if p.Secret {
				facts = append(facts, "secret: pass it as "+pn+"@env=VARIABLE")
			}
			fmt.Fprintf(w, "  %s=%s", pn, strings.ToUpper(string(p.Type)))
			if len(facts) > 0 {
				fmt.Fprintf(w, "  (%s)", strings.Join(facts, "; "))
			}
			if p.Description != "" {
				fmt.Fprintf(w, "  %s", p.Description)
			}
			fmt.Fprintln(w)
		}
	}
}
