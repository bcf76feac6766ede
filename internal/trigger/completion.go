package trigger

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
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
	names = append(names, "help")
	sort.Strings(names)
	return names, enums, valued
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
  case "$prev" in
%s    --environments|--result-file) COMPREPLY=($(compgen -f -- "$cur")); return;;
  esac
  if [[ "$cur" == -* ]]; then
    case "${COMP_WORDS[1]}" in
%s    esac
    COMPREPLY=($(compgen -W %q -- "$cur"))
  elif [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
  elif [[ "${COMP_WORDS[1]}" == completion ]]; then
    COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
  fi
}
complete -F _deploy_trigger deploy-trigger
`, cases.String(), subs.String(), "--"+strings.Join(names, " --"), cmds)
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
			case n == "environments" || n == "result-file":
				spec = ":file:_files"
			case valued[n]:
				spec = ":" + n + ":"
			}
			fmt.Fprintf(w, "    '--%s[%s]%s' \\\n", n, n, spec)
		}
		fmt.Fprintf(w, "    '1:command or job:(%s)' \\\n    '*:key=value:'\n}\n_deploy_trigger \"$@\"\n", cmds)
	case "fish":
		fmt.Fprintln(w, "# fish completion for deploy-trigger: deploy-trigger completion fish > ~/.config/fish/completions/deploy-trigger.fish")
		fmt.Fprintf(w, "complete -c deploy-trigger -n __fish_use_subcommand -f -a %q\n", cmds)
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
			case n == "environments" || n == "result-file":
				fmt.Fprintf(w, "complete -c deploy-trigger -l %s -r -F\n", n)
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
