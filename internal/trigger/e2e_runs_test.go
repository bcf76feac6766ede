package trigger

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// Issue 17. These tests run the real binaries through the local broker.

// A job's outputs reach $GITHUB_OUTPUT (the "outputs" JSON and each by name,
// in the heredoc form) and the result file; the exit code is the job's.
func TestLocalOutputsReachGitHubAndResultFile(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	dir := t.TempDir()
	ghOut, result := filepath.Join(dir, "github_output"), filepath.Join(dir, "result.json")
	cmd := triggerCmd(bin, b, "--result-file", result, "steps", "lines=4")
	cmd.Env = append(cmd.Env, "GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+ghOut)
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if code := exitCodeOf(t, cmd.Run()); code != 3 {
		t.Fatalf("exit code %d, want 3\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(ghOut)
	if err != nil {
		t.Fatal(err)
	}
	got := parseGitHubOutput(t, string(raw))
	if got["image"] != "app:4" || got["notes"] != "first line\nsecond line" || got["exit-code"] != "3" {
		t.Errorf("GITHUB_OUTPUT:\n%s", raw)
	}
	var all map[string]string
	if err := json.Unmarshal([]byte(got["outputs"]), &all); err != nil || all["image"] != "app:4" || all["notes"] != "first line\nsecond line" {
		t.Errorf("outputs = %q (%v)", got["outputs"], err)
	}
	var res struct {
		ExitCode int               `json:"exit_code"`
		Outputs  map[string]string `json:"outputs"`
	}
	rb, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rb, &res); err != nil || res.ExitCode != 3 || res.Outputs["image"] != "app:4" {
		t.Errorf("result file:\n%s (%v)", rb, err)
	}
}

// parseGitHubOutput reads a $GITHUB_OUTPUT file as the Actions runner does:
// names are case-insensitive (the map is keyed by the lower-case name) and a
// later write wins.
func parseGitHubOutput(t *testing.T, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		if name, delim, ok := strings.Cut(lines[i], "<<"); ok && !strings.Contains(name, "=") {
			var v []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				v = append(v, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("unterminated heredoc for %s in:\n%s", name, s)
			}
			m[strings.ToLower(name)] = strings.Join(v, "\n")
			continue
		}
		name, v, _ := strings.Cut(lines[i], "=")
		m[strings.ToLower(name)] = v
	}
	return m
}

// runTrigger runs deploy-trigger to its end and returns its exit code and
// output.
func runTrigger(t *testing.T, bin string, b *localbroker.Broker, args ...string) (int, string, string) {
	t.Helper()
	cmd := triggerCmd(bin, b, args...)
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return exitCodeOf(t, cmd.Run()), stdout.String(), stderr.String()
}

// runs and show read the run from the ledger's history index once the
// dispatcher has seen the task stop; filters select it or not.
func TestLocalRunsAndShow(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	code, _, stderr := runTrigger(t, bin, b, "steps", "lines=2")
	if code != 3 {
		t.Fatalf("exit code %d, want 3:\n%s", code, stderr)
	}
	m := runIDRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run id in:\n%s", stderr)
	}
	runID := m[1]
	var run map[string]any
	waitFor(t, func() bool {
		code, out, errOut := runTrigger(t, bin, b, "show", "--output", "json", runID)
		if code != 0 {
			t.Fatalf("show: exit %d\n%s%s", code, out, errOut)
		}
		run = nil
		_ = json.Unmarshal([]byte(out), &run)
		return run["outcome"] != "running"
	})
	if run["run_id"] != runID || run["job"] != "steps" || run["outcome"] != "failed" || run["exit_code"] != float64(3) ||
		!strings.HasPrefix(fmt.Sprint(run["task_arn"]), "arn:aws:ecs:") {
		t.Errorf("show = %v", run)
	}
	if rb, _ := run["requested_by"].(string); !strings.Contains(rb, ":assumed-role/") {
		t.Errorf("requested_by = %v, want the verified principal", run["requested_by"])
	}
	if p, _ := run["params"].(map[string]any); p["lines"] != "2" {
		t.Errorf("params = %v", run["params"])
	}
	// From the run log: the exit record and the job's outputs.
	if o, _ := run["outputs"].(map[string]any); o["image"] != "app:2" || o["notes"] != "first line\nsecond line" {
		t.Errorf("outputs = %v", run["outputs"])
	}
	if x, _ := run["exit"].(map[string]any); x["code"] != float64(3) || x["reason"] != "completed" {
		t.Errorf("exit = %v", run["exit"])
	}
	// The start breakdown, from the ECS task events the agent sent (its
	// RUNNING event carries every start time, before the STOPPED one).
	var steps []string
	if st, _ := run["start"].(map[string]any); st != nil {
		for _, s := range st["steps"].([]any) {
			steps = append(steps, fmt.Sprint(s.(map[string]any)["step"]))
		}
	}
	slices.Sort(steps) // in time order; accepted and task_created race
	if got := strings.Join(steps, " "); got != "accepted pull_started pull_stopped task_created task_started" {
		t.Errorf("show's start steps: %q, want every step", got)
	}

	// Without the run log: the outputs the dispatcher kept in the ledger.
	code, out, errOut := runTrigger(t, bin, b, "show", "-o", "json", "--log-group=", runID)
	run = nil
	if err := json.Unmarshal([]byte(out), &run); err != nil || code != 0 {
		t.Fatalf("show without the run log: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if o, _ := run["outputs"].(map[string]any); o["image"] != "app:2" || run["exit"] != nil {
		t.Errorf("show without the run log: outputs %v, exit %v; want the ledger's outputs and no exit", run["outputs"], run["exit"])
	}

	code, out, errOut = runTrigger(t, bin, b, "runs")
	if code != 0 || !strings.Contains(out, "RUN ID") || !strings.Contains(out, runID) || !strings.Contains(out, "failed (3)") {
		t.Errorf("runs: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runTrigger(t, bin, b, "runs", "-o", "json", "--job", "steps", "--outcome", "failed")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"run_id":"`+runID+`"`) {
		t.Errorf("runs --job steps --outcome failed: exit %d\n%s", code, out)
	}
	for _, filter := range [][]string{{"--job", "sleeper"}, {"--outcome", "succeeded"}, {"--requester", "nobody-like-this"}, {"--since", "2h", "--until", "1h"}} {
		code, out, _ = runTrigger(t, bin, b, append([]string{"runs", "-o", "json"}, filter...)...)
		if code != 0 || out != "" {
			t.Errorf("runs %v: exit %d, want no runs:\n%s", filter, code, out)
		}
	}
	for _, cmd := range []string{"show", "logs", "attach"} { // 240: not 241, the broker's refusal
		if code, _, errOut := runTrigger(t, bin, b, cmd, "01JD0000000000000000000000"); code != 240 || !strings.Contains(errOut, "is not in the run ledger") {
			t.Errorf("%s of an unknown run: exit %d, want 240\n%s", cmd, code, errOut)
		}
	}
	if code, _, errOut := runTrigger(t, bin, b, "show", "--ledger-table", "", "not-a-run-id"); code != 240 {
		t.Errorf("show of a bad run id: exit %d\n%s", code, errOut)
	}
}

// stepLines keeps the job's lines of the steps job from combined output.
func stepLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "step ") {
			out = append(out, l)
		}
	}
	return out
}

func wantSteps(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		if i%2 == 0 {
			out = append(out, fmt.Sprintf("step %d err", i))
		} else {
			out = append(out, fmt.Sprintf("step %d out", i))
		}
	}
	return out
}

// The trigger that started a run is killed with SIGKILL mid-run; attach (by
// the run's idempotency key) prints what was already written, follows the
// rest, and exits with the job's exit code: every line once, each stream in
// order, starting as the live view did. logs then prints the same lines.
func TestLocalAttachAfterTheTriggerWasKilled(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	goFile := gateFile(t)
	first := triggerCmd(bin, b, "--idempotency-key", "gha-4242-1-deploy", "steps", "lines=20", "wait="+goFile)
	var firstOut testutil.SyncBuffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(firstOut.String(), "step 10 err") })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	m := runIDRE.FindStringSubmatch(firstOut.String())
	if m == nil {
		t.Fatalf("no run id in:\n%s", firstOut.String())
	}
	runID := m[1]

	// The CI job finds its run again by the key it derived from its own id.
	// As in a GitHub job: the result goes to $GITHUB_OUTPUT and the result
	// file as if attach had started the run.
	ghOut, result := filepath.Join(t.TempDir(), "github_output"), filepath.Join(t.TempDir(), "result.json")
	attach := triggerCmd(bin, b, "attach", "--result-file", result, "--key", "gha-4242-1-deploy", "--job", "steps")
	attach.Env = append(attach.Env, "GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+ghOut)
	var out testutil.SyncBuffer
	attach.Stdout, attach.Stderr = &out, &out
	if err := attach.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- attach.Wait() }()
	waitFor(t, func() bool { return strings.Contains(out.String(), "step 10 err") })
	if !strings.Contains(out.String(), "attached to run "+runID) {
		t.Errorf("attach --key did not find run %s:\n%s", runID, out.String())
	}
	if strings.Contains(out.String(), "step 11") {
		t.Fatalf("the job went on before it was let:\n%s", out.String())
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		attach.Process.Kill()
		t.Fatalf("attach did not end:\n%s", out.String())
	}
	if code := exitCodeOf(t, err); code != 3 {
		t.Fatalf("attach exit code %d, want the job's 3:\n%s", code, out.String())
	}
	// The runner reads the two pipes concurrently, so the order across the
	// streams is the order it read them in: what the killed trigger had
	// printed live is where attach starts, and each stream is in order.
	got := stepLines(out.String())
	live := stepLines(firstOut.String())
	if len(got) < len(live) || !slices.Equal(got[:len(live)], live) {
		t.Errorf("attach printed\n%s\nwhich does not start with what the live view printed:\n%s", strings.Join(got, "\n"), strings.Join(live, "\n"))
	}
	var gotOut, gotErr []string
	for _, l := range got {
		if strings.HasSuffix(l, " out") {
			gotOut = append(gotOut, l)
		} else {
			gotErr = append(gotErr, l)
		}
	}
	var wantOut, wantErr []string
	for _, l := range wantSteps(20) {
		if strings.HasSuffix(l, "out") {
			wantOut = append(wantOut, l)
		} else {
			wantErr = append(wantErr, l)
		}
	}
	if !slices.Equal(gotOut, wantOut) || !slices.Equal(gotErr, wantErr) {
		t.Errorf("attach printed\n%s\nwant every step once, each stream in order", strings.Join(got, "\n"))
	}

	raw, _ := os.ReadFile(ghOut)
	gh := parseGitHubOutput(t, string(raw))
	if gh["run-id"] != runID || gh["exit-code"] != "3" || !strings.Contains(gh["requested-by"], ":assumed-role/") || gh["outcome"] != "failed" || gh["image"] != "app:20" || !strings.HasPrefix(gh["task-arn"], "arn:aws:ecs:") {
		t.Errorf("GITHUB_OUTPUT after attach:\n%s", raw)
	}
	var res struct {
		RunID    string            `json:"run_id"`
		ExitCode int               `json:"exit_code"`
		Outputs  map[string]string `json:"outputs"`
	}
	if rb, err := os.ReadFile(result); err != nil || json.Unmarshal(rb, &res) != nil || res.RunID != runID || res.ExitCode != 3 || res.Outputs["notes"] != "first line\nsecond line" {
		t.Errorf("result file after attach: %+v (%v)", res, err)
	}

	code, logOut, logErr := runTrigger(t, bin, b, "logs", runID)
	if code != 0 {
		t.Fatalf("logs: exit %d\n%s", code, logErr)
	}
	if logOut != strings.Join(wantOut, "\n")+"\n" || !slices.Equal(stepLines(logErr), wantErr) {
		t.Errorf("logs printed\n-- stdout --\n%s-- stderr --\n%s", logOut, logErr)
	}
}

// Ctrl-C on attach detaches (245) and the run goes on; on logs --follow it
// only stops reading (0); each says so once. With --cancel-on-interrupt
// attach cancels the run (a signed cancel, as a run's) and follows it to its
// end.
func TestLocalAttachInterrupt(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	first := triggerCmd(bin, b, "sleeper")
	var firstOut testutil.SyncBuffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(firstOut.String(), "sleeper started") })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	m := runIDRE.FindStringSubmatch(firstOut.String())
	if m == nil {
		t.Fatalf("no run id in:\n%s", firstOut.String())
	}
	runID := m[1]

	interrupt := func(args ...string) (int, string) {
		cmd := triggerCmd(bin, b, args...)
		var out testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitFor(t, func() bool { return strings.Contains(out.String(), "sleeper started") })
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			return exitCodeOf(t, err), out.String()
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("attach did not end after SIGINT:\n%s", out.String())
		}
		return 0, ""
	}
	code, out := interrupt("attach", runID)
	if code != 245 || strings.Count(out, "detached from run "+runID) != 1 {
		t.Fatalf("detach: exit %d\n%s", code, out)
	}
	code, out = interrupt("logs", "--follow", runID)
	if code != 0 || strings.Count(out, "detached from run "+runID) != 1 {
		t.Fatalf("logs --follow interrupted: exit %d, want 0 and one message\n%s", code, out)
	}
	if ts := tasks(t, b, runID); len(ts) != 1 || aws.ToString(ts[0].DesiredStatus) != "RUNNING" {
		t.Fatalf("after a detach the task should still run: %d tasks", len(ts))
	}
	code, out = interrupt("attach", "--cancel-on-interrupt", runID)
	if code != 245 || !strings.Contains(out, "cancelling run "+runID) || !strings.Contains(out, "sleeper got SIGTERM") {
		t.Fatalf("cancel: exit %d\n%s", code, out)
	}
	if ts := tasks(t, b, runID); len(ts) != 1 || aws.ToString(ts[0].DesiredStatus) != "STOPPED" {
		t.Fatalf("after a cancel the task should be stopped: %d tasks", len(ts))
	}
}
