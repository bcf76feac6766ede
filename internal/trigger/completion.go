package trigger

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// flagNames lists deploy-trigger's long flags (without "--"), sorted, and
// the values of those that take a fixed set.
func flagNames() (names []string, enums map[string][]string, valued map[string]bool) {
	p, err := kong.New(&CLI{}, kong.Name("deploy-trigger"), cliVars(), kong.Exit(func(int) {}))
	if err != nil {
		return nil, nil, nil
	}
	enums, valued = map[string][]string{}, map[string]bool{}
	for _, f := range p.Model.Flags {
		if f.Hidden {
			continue
		}
		names = append(names, f.Name)
		valued[f.Name] = !f.IsBool() && !f.IsCounter()
		if f.Enum != "" {
			enums[f.Name] = strings.Split(f.Enum, ",")
		}
	}
	if !slices.Contains(names, "help") {
		names = append(names, "help")
	}
	sort.Strings(names)
	return names, enums, valued
}

// Completion asks deploy-trigger itself for the names it cannot know when
// the script is written: "deploy-trigger [--catalogue F] [--environments F]
// completion __jobs" prints the catalogue's job names, "… completion __envs"
// the environments file's, one a line, and nothing (exit 0) when there is
// no such file or it does not load: completion never prints errors.
const (
	completeJobs = "__jobs"
	completeEnvs = "__envs"
)

// completionNames prints the names asked for by what (completeJobs or
// completeEnvs), for the run's catalogue and environments file.
func completionNames(w io.Writer, cli *CLI, getenv func(string) string, what string) {
	var names []string
	switch what {
	case completeJobs:
		if path := firstNonEmpty(cli.Catalogue, getenv("DEPLOY_TRIGGER_CATALOGUE")); path != "" {
			if cat, err := config.Load(path); err == nil {
				names = cat.JobNames()
			}
		}
	case completeEnvs:
		names = environmentNames(firstNonEmpty(cli.Environments, getenv("DEPLOY_TRIGGER_ENVIRONMENTS")), getenv)
	}
	for _, n := range names {
		fmt.Fprintln(w, n)
	}
}

// environmentNames are the environments of the first environments file
// found where a run looks for it (nil when none loads).
func environmentNames(explicit string, getenv func(string) string) []string {
	for _, p := range environmentsPaths(explicit, getenv) {
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(fh, MaxEnvironmentsBytes+1))
		fh.Close()
		if err != nil {
			return nil
		}
		f, err := decodeEnvironments(b, p)
		if err != nil {
			return nil
		}
		return f.names()
	}
	return nil
}

// valuedFlags is a bash case pattern of the run's flags that take a value
// (--env NAME, -e NAME…), whose next word is no job name. A bare --color
// takes none (colorFlagAlone, cli.go).
func valuedFlags(valued map[string]bool) string {
	var pats []string
	for _, n := range sortedKeys(valued) {
		if valued[n] && n != "color" {
			pats = append(pats, "--"+n)
		}
	}
	pats = append(pats, "-e", "-o") // --env, --output
	return strings.Join(pats, "|")
}

// writeCompletion prints a completion script for shell: commands and flags,
// the values of --output and --color, and files for the file flags.
func writeCompletion(w io.Writer, shell string) error {
	names, enums, valued := flagNames()
	cmds := strings.Join(ReservedCommands, " ")
	cmdFlags := map[string][]string{} // each command's flags
	for _, c := range commands() {
		cmdFlags[c.Name] = commandFlagNames(c)
		if !slices.Contains(cmdFlags[c.Name], "help") {
			cmdFlags[c.Name] = append(cmdFlags[c.Name], "help")
		}
	}
	switch shell {
	case "bash":
		var cases, subs strings.Builder
		for _, c := range ReservedCommands {
			fmt.Fprintf(&subs, "      %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return;;\n", c, "--"+strings.Join(cmdFlags[c], " --"))
		}
		for _, n := range sortedKeys(enums) {
			fmt.Fprintf(&cases, "    --%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return;;\n", n, strings.Join(enums[n], " "))
		}
		fmt.Fprintf(w, `# bash completion for deploy-trigger: source <(deploy-trigger completion bash)
_deploy_trigger() {
  local cur prev
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  local i w cmd="" skip="" files=()
  for ((i = 1; i < COMP_CWORD; i++)); do # the files the names come from
    case "${COMP_WORDS[i]}" in --catalogue|--environments) files+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}");; esac
  done
  for ((i = 1; i < COMP_CWORD; i++)); do # the command or job: the first word that is no flag or flag value
    w="${COMP_WORDS[i]}"
    if [[ -n $skip ]]; then [[ $w == = ]] || skip=""; continue; fi
    case "$w" in
      %s) skip=1;;
      -*|=) ;;
      *) cmd="$w"; break;;
    esac
  done
  case "$prev" in
%s    --environments|--result-file|--catalogue) COMPREPLY=($(compgen -f -- "$cur")); return;;
    --env|-e) COMPREPLY=($(compgen -W "$(deploy-trigger "${files[@]}" completion %s 2>/dev/null)" -- "$cur")); return;;
  esac
  if [[ "$cur" == -* ]]; then
    case "$cmd" in
%s    esac
    COMPREPLY=($(compgen -W %q -- "$cur"))
  elif [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "%s $(deploy-trigger "${files[@]}" completion %s 2>/dev/null)" -- "$cur"))
  elif [[ "$cmd" == completion ]]; then
    COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
  fi
}
complete -F _deploy_trigger deploy-trigger
`, valuedFlags(valued), cases.String(), completeEnvs, subs.String(), "--"+strings.Join(names, " --"), cmds, completeJobs)
	case "zsh":
		fmt.Fprintln(w, "#compdef deploy-trigger\n# zsh completion for deploy-trigger: deploy-trigger completion zsh > \"${fpath[1]}/_deploy-trigger\"")
		fmt.Fprintln(w, "_deploy_trigger() {\n  case $words[2] in")
		for _, c := range ReservedCommands {
			fmt.Fprintf(w, "    %s) _arguments -s", c)
			for _, n := range cmdFlags[c] {
				fmt.Fprintf(w, " '--%s[%s]'", n, n)
			}
			fmt.Fprintln(w, " '*:argument:'; return;;")
		}
		fmt.Fprintln(w, "  esac\n  _arguments -s \\")
		for _, n := range names {
			spec := ""
			switch {
			case enums[n] != nil:
				spec = fmt.Sprintf(":%s:(%s)", n, strings.Join(enums[n], " "))
			case n == "environments" || n == "result-file" || n == "catalogue":
				spec = ":file:_files"
			case n == "env":
				spec = ":environment:_deploy_trigger_names " + completeEnvs
			case valued[n]:
				spec = ":" + n + ":"
			}
			fmt.Fprintf(w, "    '--%s[%s]%s' \\\n", n, n, spec)
		}
		fmt.Fprintf(w, "    '1:command or job:_deploy_trigger_first' \\\n    '*:key=value:'\n}\n")
		fmt.Fprintf(w, "_deploy_trigger_first() { compadd -- %s $(deploy-trigger completion %s 2>/dev/null) }\n", cmds, completeJobs)
		fmt.Fprintf(w, "_deploy_trigger_names() { compadd -- $(deploy-trigger completion $1 2>/dev/null) }\n_deploy_trigger \"$@\"\n")
	case "fish":
		fmt.Fprintln(w, "# fish completion for deploy-trigger: deploy-trigger completion fish > ~/.config/fish/completions/deploy-trigger.fish")
		fmt.Fprintf(w, "complete -c deploy-trigger -n __fish_use_subcommand -f -a %q\n", cmds)
		fmt.Fprintf(w, "complete -c deploy-trigger -n __fish_use_subcommand -f -a '(deploy-trigger completion %s 2>/dev/null)'\n", completeJobs)
		fmt.Fprintln(w, "complete -c deploy-trigger -n '__fish_seen_subcommand_from completion' -f -a 'bash zsh fish'")
		for _, c := range ReservedCommands {
			for _, n := range cmdFlags[c] {
				fmt.Fprintf(w, "complete -c deploy-trigger -n '__fish_seen_subcommand_from %s' -l %s\n", c, n)
			}
		}
		for _, n := range names {
			switch {
			case enums[n] != nil:
				fmt.Fprintf(w, "complete -c deploy-trigger -l %s -x -a %q\n", n, strings.Join(enums[n], " "))
			case n == "environments" || n == "result-file" || n == "catalogue":
				fmt.Fprintf(w, "complete -c deploy-trigger -l %s -r -F\n", n)
			case n == "env":
				fmt.Fprintf(w, "complete -c deploy-trigger -s e -l env -x -a '(deploy-trigger completion %s 2>/dev/null)'\n", completeEnvs)
			case valued[n]:
				fmt.Fprintf(w, "complete -c deploy-trigger -l %s -x\n", n)
			default:
				fmt.Fprintf(w, "complete -c deploy-trigger -l %s\n", n)
			}
		}
	default:
		return fmt.Errorf("completion: unknown shell %q: use bash, zsh or fish", shell)
	}
	return nil
}
