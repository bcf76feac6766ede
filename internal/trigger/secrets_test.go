package trigger

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Issue 13.4: a secret parameter's value is never printed or written by
// deploy-trigger, in any output mode (plain, terminal, github log, step
// summary and outputs, json events, result file, dry run), however the
// trigger learnt it is secret: its name (token=…), name@env=VAR, --secret,
// or the --catalogue. In GitHub mode it is masked before anything else.
// The broker still gets the real values.
func TestSecretParamsAreNeverPrinted(t *testing.T) {
	t.Parallel()
	const (
		tokenVal = "tok-VALUE-1111"
		envVal   = "env-VALUE-2222"
		flagVal  = "flag-VALUE-3333"
		catVal   = "cat-VALUE-4444"
	)
	secrets := []string{tokenVal, envVal, flagVal, catVal}
	dir := t.TempDir()
	catalogue := filepath.Join(dir, "broker.yaml")
	os.WriteFile(catalogue, []byte(`broker: {name: deploy-broker}
trusted_principals: ["123456789012"]
runner: {image: i}
jobs:
  website:
    command: [/bin/deploy, "--t={{deploy_token}}", "--k={{key}}", "--n={{note}}", "--p={{pin}}", "--v={{version}}"]
    params:
      deploy_token: {type: string, pattern: '[a-zA-Z0-9-]+', required: true}
      key: {type: string, pattern: '[a-zA-Z0-9-]+', required: true}
      note: {type: string, pattern: '[a-zA-Z0-9-]+', required: true}
      pin: {type: string, pattern: '[a-zA-Z0-9-]+', required: true, secret: true}
      version: {type: string, pattern: '[0-9.]+', required: true}
`), 0o644)
	for _, mode := range []string{"plain", "terminal", "github", "json", "dry-run"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := startScripted(t, "deploy-broker")
			outFile, sumFile, resFile := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "sum"), filepath.Join(t.TempDir(), "result.json")
			env := b.env("MY_KEY="+envVal, "GITHUB_OUTPUT="+outFile, "GITHUB_STEP_SUMMARY="+sumFile)
			args := []string{"--result-file", resFile, "--catalogue", catalogue, "--secret", "note",
				"website", "deploy_token=" + tokenVal, "key@env=MY_KEY", "note=" + flagVal, "pin=" + catVal, "version=1.4.2"}
			if mode == "dry-run" {
				args = append([]string{"--dry-run"}, args...)
			} else {
				args = append([]string{"--output", mode}, args...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tr := startTrigger(ctx, env, nil, args...)
			if mode != "dry-run" {
				req := b.request(ctx)
				if req == nil {
					t.Fatal("no request")
				}
				if req.Params["deploy_token"] != tokenVal || req.Params["key"] != envVal || req.Params["note"] != flagVal || req.Params["pin"] != catVal {
					t.Fatalf("the broker did not get the real values: %v", req.Params)
				}
				url := b.queue(ctx, req.RunID)
				// The job itself echoes a secret; the broker's reason quotes one.
				b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5),
					output(2, out("using token "+tokenVal), errl("key="+envVal+" pin="+catVal)), exitRec(3, 4, protocol.ReasonCompleted))
			}
			err := tr.wait(t, 20*time.Second)
			if mode != "dry-run" && exitcode.Code(err) != 4 {
				t.Fatalf("exit %d (%v)\n%s", exitcode.Code(err), err, tr.stderr)
			}
			stdout := tr.stdout.String()
			if mode == "github" {
				// Masked first, before any other line.
				lines := strings.SplitN(stdout, "\n", len(secrets)+1)
				for i := range secrets {
					if !strings.HasPrefix(lines[i], "::add-mask::") {
						t.Fatalf("line %d is not a mask: %q\n%s", i+1, lines[i], stdout)
					}
				}
				stdout = lines[len(secrets)]
			}
			files := map[string]string{"stdout": stdout, "stderr": tr.stderr.String()}
			for name, path := range map[string]string{"GITHUB_OUTPUT": outFile, "GITHUB_STEP_SUMMARY": sumFile, "result file": resFile} {
				b, _ := os.ReadFile(path)
				files[name] = string(b)
			}
			for name, text := range files {
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s holds the secret %q:\n%s", name, s, text)
					}
				}
			}
			if all := files["stdout"] + files["stderr"]; !strings.Contains(all, "***") || !strings.Contains(all, "1.4.2") {
				t.Errorf("the values are not shown as *** (or the plain one is hidden):\n%s", all)
			}
		})
	}
}

// An error never quotes a value that may be a secret.
func TestParamErrorsDoNotQuoteValues(t *testing.T) {
	if _, err := parseParams([]string{"=hunter2"}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("=value: %v", err)
	}
	if _, _, err := parseParamArgs([]string{"token@env=NOPE"}, envOf()); err == nil || !strings.Contains(err.Error(), "NOPE is empty or unset") {
		t.Errorf("unset variable: %v", err)
	}
}

// A value with a line break would be masked by its first line only: it is
// refused before anything is printed, and the error does not quote it.
func TestParamControlCharactersRefused(t *testing.T) {
	for _, args := range [][]string{
		{"key@env=PEM"},
		{"note=a\x1b[2Jb"},
		{"token=line1\nline2"},
	} {
		_, _, err := parseParamArgs(args, envOf("PEM=-----BEGIN KEY-----\nc2VjcmV0bGluZQ==\n-----END KEY-----"))
		if err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("%q: err = %v, want a control character refused", args, err)
			continue
		}
		if strings.Contains(err.Error(), "c2VjcmV0bGluZQ") || strings.Contains(err.Error(), "line2") || strings.Contains(err.Error(), "[2J") {
			t.Errorf("%q: the error quotes the value: %v", args, err)
		}
	}
	var out, errb bytes.Buffer
	err := Run(t.Context(), []string{"website", "key@env=PEM"}, envOf("GITHUB_ACTIONS=true", "PEM=l1\nsecret-line-2", "DEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:eu-west-1:123456789012:b"), strings.NewReader(""), &out, &errb, nil)
	if code := codeOf(err); code != 240 {
		t.Fatalf("code = %d (%v)", code, err)
	}
	if all := out.String() + errb.String(); strings.Contains(all, "secret-line-2") {
		t.Errorf("a line of the value was printed:\n%s", all)
	}
}

// Each line of a value is masked on its own, escaped as command data.
func TestMaskEveryLineEscaped(t *testing.T) {
	var out bytes.Buffer
	p := newGithubPrinter(&out, &out, "", "", "tok")
	p.mask([]string{"a\r\nb%0A\n\nc%25"})
	want := "::add-mask::a\n::add-mask::b%250A\n::add-mask::c%2525\n"
	if out.String() != want {
		t.Errorf("mask printed %q, want %q", out.String(), want)
	}
}

// Review finding 5: the trigger redacts the bytes of the job's output,
// base64 lines (not UTF-8) included, and a value split across pieces of a
// stream; what it holds back waiting for the next piece is printed at the
// exit record.
func TestRedactOutputBytesAndPieces(t *testing.T) {
	var stdout, stderr bytes.Buffer
	r := &redactingPrinter{printer: newPlainPrinter(&stdout, &stderr, false, false), names: map[string]bool{"pin": true}, vals: []string{"hunter2"}}
	b64 := func(s string) protocol.Line {
		_, enc := protocol.EncodeText([]byte(s))
		return protocol.Line{Stream: protocol.Stdout, B64: enc}
	}
	cont := func(l protocol.Line) protocol.Line { l.Cont = true; return l }
	recs := []protocol.Record{
		output(2, b64("\xffkey=hunter2\xfe")),
		output(3, cont(out("split hun")), errl("other stream"), out("ter2 done")),
		output(4, cont(out("a h")), cont(out("u")), cont(out("nter")), out("2!")),
		output(5, cont(out("ends with hunt"))),
		exitRec(6, 0, protocol.ReasonCompleted),
	}
	for _, rec := range recs {
		if err := r.record(rec); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := stdout.String(), "\xffkey=***\xfe\nsplit *** done\na ***!\nends with hunt"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if strings.Contains(stdout.String()+stderr.String(), "hunter2") {
		t.Errorf("the secret was printed")
	}
}
