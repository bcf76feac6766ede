package trigger

import (
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
