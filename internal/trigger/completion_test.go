package trigger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The bash completion, run in bash against the built binary: the first
// word offers the commands and the catalogue's jobs, --env the
// environments file's names, each command its own flags, and --help
// once. Before issue 25 it offered no job or environment name, and --help
// twice.
func TestBashCompletionOffersJobsEnvironmentsAndFlagsOnce(t *testing.T) {
	bin := buildBinaries(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	envs, err := os.ReadFile("testdata/environments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".deploy-trigger.yaml"), envs, 0o600); err != nil {
		t.Fatal(err)
	}
	catalogue, err := filepath.Abs("testdata/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	script, err := exec.Command(filepath.Join(bin, "deploy-trigger"), "completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		t.Helper()
		sh := string(script) + "\nCOMP_WORDS=(" + strings.Join(quoteAll(words), " ") + ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) +
			"\n_deploy_trigger\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", sh)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir, "DEPLOY_TRIGGER_CATALOGUE=" + catalogue}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	has := func(got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if n := count(got, w); n != 1 {
				t.Errorf("offered %q %d times, want once: %v", w, n, got)
			}
		}
	}
	has(complete("deploy-trigger", ""), "runs", "attach", "sleeper", "steps", "ticker")
	has(complete("deploy-trigger", "--env", ""), "production", "staging")
	has(complete("deploy-trigger", "runs", "--env", "prod"), "production")
	has(complete("deploy-trigger", "--"), "--help", "--env", "--dry-run")
	has(complete("deploy-trigger", "runs", "--"), "--help", "--ledger-table", "--outcome")
	// After the flags that usually come first (the README's `deploy-trigger
	// --env production website …`, `… --env production approve RUN_ID`):
	// the job names, and the command's own flags. Before, only the first
	// word was completed as a command or job, and the flags of the command
	// were looked up in the first word (--env).
	has(complete("deploy-trigger", "--env", "production", ""), "sleeper", "steps", "approve")
	has(complete("deploy-trigger", "-e", "production", "--dry-run", "--color", "st"), "steps")
	has(complete("deploy-trigger", "--env", "=", "production", "st"), "steps")
	has(complete("deploy-trigger", "--env", "production", "approve", "--"), "--reader-role-arn", "--yes")
	if got := complete("deploy-trigger", "--env", "production", "steps", ""); count(got, "sleeper") != 0 || count(got, "approve") != 0 {
		t.Errorf("a job name was offered after the job: %v", got)
	}
}

func quoteAll(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return q
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
