package config

import (
	"fmt"
	"path"
	"strings"
)

// shells are the programs whose first operand is code: a -c command string
// or a script file.
var shells = map[string]bool{
	"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true, "ksh": true,
	"mksh": true, "yash": true, "posh": true, "rbash": true, "csh": true, "tcsh": true, "fish": true,
}

// checkShell refuses a command that would build shell code from request
// data. When the command runs a shell — command[0] is one, or env or busybox
// starting one — parameters may appear only in the shell's positional
// arguments ($0, $1…), never in its options, its -c command string or the
// name of its script: a value there is read as code, whatever its pattern.
func checkShell(cmd []string) []string {
	if len(cmd) == 0 {
		return nil
	}
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	has := func(i int) bool { return i < len(cmd) && placeholderRE.MatchString(cmd[i]) }

	at := 0 // the index of the shell in cmd
	switch path.Base(cmd[0]) {
	case "env":
		at = 1
		for ; at < len(cmd); at++ {
			a := cmd[at]
			if a == "--" {
				at++
				break
			}
			if strings.HasPrefix(a, "-") {
				// -S splits its argument into a command line: code as well.
				if has(at) {
					bad("command[%d] is an option of env, and may not contain a parameter", at)
				}
				switch a {
				case "-u", "-C", "-S", "--unset", "--chdir", "--split-string":
					if has(at + 1) {
						bad("command[%d] is the argument of env %s, and may not contain a parameter", at+1, a)
					}
					at++
				}
				continue
			}
			if i := strings.IndexByte(a, '='); i > 0 {
				// NAME=VALUE: a parameter in the value is data, as in
				// environment; never in the name.
				if placeholderRE.MatchString(a[:i]) {
					bad("command[%d] sets an environment variable whose name holds a parameter", at)
				}
				continue
			}
			break
		}
		if has(at) {
			bad("command[%d] is the program env runs, and may not contain a parameter: the program must be fixed by the catalogue", at)
		}
	case "busybox":
		at = 1
		if has(at) {
			bad("command[1] is the busybox applet, and may not contain a parameter: the program must be fixed by the catalogue")
		}
	}
	if at >= len(cmd) || !shells[path.Base(cmd[at])] {
		return errs
	}
	shell := path.Base(cmd[at])

	// The shell's options, then its first operand.
	dashC, dashS := false, false
	op := at + 1
	for ; op < len(cmd); op++ {
		a := cmd[op]
		if a == "--" || a == "-" {
			op++
			break
		}
		if len(a) < 2 || a[0] != '-' && a[0] != '+' {
			break
		}
		if strings.HasPrefix(a, "--command=") { // fish: the command string is in the option
			if has(op) {
				bad("%s", commandStringError(op, shell))
			}
			return errs
		}
		if has(op) {
			bad("command[%d] is an option of %s, and may not contain a parameter: the shell's options are fixed by the catalogue", op, shell)
		}
		switch {
		case a == "--command": // fish
			dashC = true
		case strings.HasPrefix(a, "--"):
			switch a {
			case "--rcfile", "--init-file":
				op++
			}
		default:
			flags := a[1:]
			if a[0] == '-' && strings.ContainsRune(flags, 'c') {
				dashC = true
			}
			if a[0] == '-' && strings.ContainsRune(flags, 's') {
				dashS = true
			}
			if strings.HasSuffix(flags, "o") || strings.HasSuffix(flags, "O") {
				if has(op + 1) {
					bad("command[%d] is the argument of %s %s, and may not contain a parameter", op+1, shell, a)
				}
				op++ // -o pipefail: the option takes the next word
			}
		}
	}
	switch {
	case op >= len(cmd):
	case dashC && has(op):
		bad("%s", commandStringError(op, shell))
	case !dashC && !dashS && has(op):
		bad("command[%d] is the script %s runs, and may not contain a parameter: the program must be fixed by the catalogue", op, shell)
	}
	return errs
}

func commandStringError(i int, shell string) string {
	return fmt.Sprintf("command[%d] is the command string of %s -c, and may not contain a parameter: the shell would run the value as code, whatever its pattern. "+
		"Pass parameters as positional arguments after the command string instead, e.g. "+
		`["/bin/sh", "-c", "deploy --version \"$1\"", "sh", "{{version}}"] (the word right after the command string is $0)`, i, shell)
}
