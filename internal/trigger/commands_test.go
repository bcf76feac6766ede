package trigger

import (
	"bytes"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Every command is declared once (protocol.TriggerCommands) and appears in
// all four places that come from it: --help, its own --help, the shell
// completion (the command and its flags) and the reserved job names. Before
// issue 21, approve and reject were missing from --help, completion and the
// reserved names, and `approve --help` printed the general help.
func TestEachCommandAppearsEverywhere(t *testing.T) {
	declared := make([]string, 0, len(protocol.TriggerCommands))
	for _, c := range protocol.TriggerCommands {
		declared = append(declared, c.Name)
	}
	withFlags := make([]string, 0, len(commandFlags))
	for name := range commandFlags {
		withFlags = append(withFlags, name)
	}
	sort.Strings(withFlags)
	if got := slices.Sorted(slices.Values(declared)); !slices.Equal(got, withFlags) {
		t.Fatalf("declared commands %v, commands with flags and handlers %v", got, withFlags)
	}
	var help, errb bytes.Buffer
	if _, err := parseCLI([]string{"--help"}, envOf(), &help, &errb); !errors.Is(err, errHelpShown) {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var b bytes.Buffer
		if err := writeCompletion(&b, shell); err != nil {
			t.Fatal(err)
		}
		scripts[shell] = b.String()
	}
	for _, c := range commands() {
		if !strings.Contains(help.String(), "\n    "+strings.TrimSpace(c.Name+" "+c.Args)+"  ") {
			t.Errorf("%s: not in --help's commands", c.Name)
		}
		var out, errOut bytes.Buffer
		a := newApp(envOf(), strings.NewReader(""), &out, &errOut, nil)
		if err := a.main(t.Context(), []string{c.Name, "--help"}); err != nil {
			t.Errorf("%s --help: %v", c.Name, err)
		}
		if !strings.Contains(out.String(), "deploy-trigger "+c.Name) || strings.Contains(out.String(), "Examples:") {
			t.Errorf("%s --help prints not the command's own help:\n%s", c.Name, out.String())
		}
		if !slices.Contains(protocol.ReservedJobNames, c.Name) {
			t.Errorf("%s: not a reserved job name", c.Name)
		}
		flags := commandFlagNames(c)
		for shell, s := range scripts {
			if !strings.Contains(s, c.Name) {
				t.Errorf("%s: not in the %s completion", c.Name, shell)
			}
			for _, f := range flags {
				var want string
				switch shell {
				case "bash":
					want = c.Name + `) COMPREPLY=($(compgen -W "`
				case "zsh":
					want = "'--" + f + "[" + f + "]'"
				case "fish":
					want = "__fish_seen_subcommand_from " + c.Name + "' -l " + f + "\n"
				}
				if !strings.Contains(s, want) || (shell == "bash" && !strings.Contains(s, "--"+f)) {
					t.Errorf("%s: flag --%s not in the %s completion", c.Name, f, shell)
				}
			}
		}
	}
}

// `jobs` needs no --catalogue since the broker publishes its catalogue
// (jobs --env NAME): its help said "Usage: deploy-trigger jobs --catalogue
// FILE" and "The catalogue's jobs", as if the file were required.
func TestJobsHelpSaysTheCatalogueIsOptional(t *testing.T) {
	var out, errOut bytes.Buffer
	a := newApp(envOf(), strings.NewReader(""), &out, &errOut, nil)
	if err := a.main(t.Context(), []string{"jobs", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: deploy-trigger jobs [--catalogue FILE] [flags]", "The deployed jobs you may run", "(--env NAME)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("jobs --help does not say %q:\n%s", want, out.String())
		}
	}
}
