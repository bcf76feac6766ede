package trigger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// Issue 14.11: every example is run by a test. Each deploy-trigger command
// line in README.md, docs/*.md and --help goes through the real parser and
// resolve (environments from testdata, a topic when none is named); one for
// a job of examples/broker.yaml has its parameters checked against that
// catalogue as the broker checks them (a line whose comment says it is
// refused, "exit 24…", must be refused). GitHub workflow snippets never put
// ${{ }} inside run: and exec deploy-trigger; Jenkins snippets never run
// deploy-trigger through sh (CI.md's rule: the deployTrigger step).

type example struct {
	where string // file:line
	lang  string
	line  string // the command, continuation lines joined
}

var fenceRE = regexp.MustCompile("^\\s*```(\\w*)")

// docExamples returns the fenced code blocks of a Markdown file, a line (or
// joined command) at a time.
func docExamples(t *testing.T, path string) []example {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	in, lang, pending, start := false, "", "", 0
	for i, l := range strings.Split(string(b), "\n") {
		if m := fenceRE.FindStringSubmatch(l); m != nil {
			in, lang = !in, m[1]
			continue
		}
		if !in {
			continue
		}
		if pending == "" {
			start = i + 1
		}
		if strings.HasSuffix(l, "\\") && lang != "yaml" {
			pending += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		out = append(out, example{where: filepath.Base(path) + ":" + strconv.Itoa(start), lang: lang, line: pending + l})
		pending = ""
	}
	return out
}

// shellWords splits a command line as sh would, for the simple lines docs
// hold: quotes, a comment, and the end of the command at | ; && > .
func shellWords(s string) (words []string, comment string) {
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				j = len(s) - i - 1
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '#' && !inWord:
			return words, s[i:]
		case c == '|' || c == ';' || c == '>' || c == '&':
			if inWord {
				words = append(words, cur.String())
			}
			return words, ""
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, ""
}

var varRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_.]*)\}?`)

// triggerArgs finds a deploy-trigger invocation on a line: its arguments,
// the VAR=value assignments before it, and the comment after it.
func triggerArgs(line string) (args []string, assigns map[string]string, comment string, ok bool) {
	if strings.Contains(line, "[flags]") || strings.Contains(line, "──") {
		return nil, nil, "", false // a synopsis or a diagram, not a command
	}
	line = strings.ReplaceAll(line, "<TopicArn>", "arn:aws:sns:eu-west-1:123456789012:deploy-broker")
	words, comment := shellWords(strings.TrimSpace(line))
	assigns = map[string]string{}
	for i, w := range words {
		if w == "exec" || w == "export" {
			continue
		}
		if w == "deploy-trigger" || strings.HasSuffix(w, "/deploy-trigger") {
			for _, a := range words[i+1:] {
				args = append(args, varRE.ReplaceAllString(a, "1.4.2"))
			}
			return args, assigns, comment, true
		}
		k, v, isAssign := strings.Cut(w, "=")
		if !isAssign || strings.HasPrefix(k, "-") {
			return nil, nil, "", false
		}
		assigns[k] = v
	}
	return nil, nil, "", false
}

func checkInvocation(t *testing.T, cat *config.Config, where string, args []string, assigns map[string]string, comment string) {
	t.Helper()
	for i, a := range args {
		if i > 0 && (args[i-1] == "--catalogue" || args[i-1] == "--environments") && !filepath.IsAbs(a) {
			args[i] = filepath.Join("..", "..", a)
		}
	}
	env := map[string]string{"DEPLOY_TRIGGER_ENVIRONMENTS": "testdata/environments.yaml", "NEW_TOKEN": "t0ken", "DEPLOY_TOKEN": "t0ken"}
	named := false
	for _, a := range args {
		if a == "--env" || a == "-e" || strings.HasPrefix(a, "--env=") || a == "--topic-arn" {
			named = true
		}
	}
	if !named {
		env["DEPLOY_TRIGGER_TOPIC_ARN"] = "arn:aws:sns:eu-west-1:123456789012:deploy-broker"
	}
	for k, v := range assigns {
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }
	if c, ok := commandFlagsFirst(args); ok && c.own != nil {
		checkHistoryInvocation(t, where, args, getenv) // cmd_runs_test.go
		return
	}
	cli, err := parseCLI(args, getenv, &bytes.Buffer{}, &bytes.Buffer{})
	if errors.Is(err, errHelpShown) {
		return
	}
	if err != nil {
		t.Errorf("%s: deploy-trigger %s: %v", where, strings.Join(args, " "), err)
		return
	}
	if _, _, ok := decisionKind(cli); ok {
		// approve/reject RUN_ID: the environment and flags must resolve.
		cli.Params = nil
		if _, err := resolve(cli, getenv); err != nil {
			t.Errorf("%s: deploy-trigger %s: %v", where, strings.Join(args, " "), err)
		}
		return
	}
	if cli.Job == "jobs" && cli.Catalogue == "" && len(cli.Params) == 0 {
		// The broker's published catalogue: the target must resolve (the
		// listing itself is the local end-to-end tests').
		if _, err := resolve(cli, getenv); err != nil {
			t.Errorf("%s: deploy-trigger %s: %v", where, strings.Join(args, " "), err)
		}
		return
	}
	if isCommand(cli.Job) {
		a := newApp(getenv, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, nil)
		if _, err := a.command(context.Background(), cli); err != nil {
			t.Errorf("%s: deploy-trigger %s: %v", where, strings.Join(args, " "), err)
		}
		return
	}
	cfg, err := resolve(cli, getenv)
	if err != nil {
		t.Errorf("%s: deploy-trigger %s: %v", where, strings.Join(args, " "), err)
		return
	}
	job, ok := cat.Jobs[cfg.Job]
	if !ok {
		return // a job of some other catalogue: parsed and resolved only
	}
	_, err = job.Resolve(cfg.JobParams)
	refused := strings.Contains(comment, "exit 24")
	switch {
	case err != nil && !refused:
		t.Errorf("%s: deploy-trigger %s: the broker would refuse it: %v", where, strings.Join(args, " "), err)
	case err == nil && refused:
		t.Errorf("%s: deploy-trigger %s: the comment says it is refused, but the catalogue accepts it", where, strings.Join(args, " "))
	}
}

var runRE = regexp.MustCompile(`^(\s*)(?:- )?run:\s*(.*)$`)

func TestEveryExampleRuns(t *testing.T) {
	cat, err := config.Load("../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	seen := 0
	for _, f := range files {
		exs := docExamples(t, f)
		for i, ex := range exs {
			switch ex.lang {
			case "sh", "bash", "console", "shell":
				if args, assigns, comment, ok := triggerArgs(ex.line); ok {
					seen++
					checkInvocation(t, cat, ex.where, args, assigns, comment)
				}
			case "yaml", "yml":
				m := runRE.FindStringSubmatch(ex.line)
				if m == nil {
					continue
				}
				script := m[2]
				if script == "|" || script == ">" {
					// A block: the lines indented deeper than run:.
					script = ""
					for _, next := range exs[i+1:] {
						if strings.TrimSpace(next.line) != "" && len(next.line)-len(strings.TrimLeft(next.line, " ")) <= len(m[1]) {
							break
						}
						script += next.line + "\n"
					}
				}
				if strings.Contains(script, "${{") {
					t.Errorf("%s: a run: script holds a ${{ }} expression (pass it through env:): %s", ex.where, strings.TrimSpace(ex.line))
				}
				if strings.Contains(script, "deploy-trigger ") && !strings.Contains(script, "exec deploy-trigger") {
					t.Errorf("%s: a run: script calls deploy-trigger without exec (a cancelled workflow would not reach it): %s", ex.where, strings.TrimSpace(ex.line))
				}
				if args, _, _, ok := triggerArgs(script); ok {
					seen++
					checkInvocation(t, cat, ex.where, args, nil, "")
				}
			case "groovy":
				if strings.Contains(ex.line, "deploy-trigger") && regexp.MustCompile(`\bsh\b`).MatchString(ex.line) {
					t.Errorf("%s: a Jenkins sh step runs deploy-trigger (CI.md: use the deployTrigger step): %s", ex.where, strings.TrimSpace(ex.line))
				}
			}
		}
	}
	// --help's examples.
	var joined string
	for _, l := range strings.Split(helpDescription, "\n") {
		if strings.HasSuffix(l, "\\") {
			joined += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		l, joined = joined+l, ""
		if !strings.HasPrefix(l, "  deploy-trigger ") && !strings.HasPrefix(l, "  DEPLOY_TRIGGER_") {
			continue
		}
		if args, assigns, comment, ok := triggerArgs(l); ok {
			seen++
			checkInvocation(t, cat, "--help", args, assigns, comment)
		}
	}
	if seen < 15 {
		t.Errorf("only %d examples found: is the extraction broken?", seen)
	}
}
