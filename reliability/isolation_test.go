package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

// TestHostileJobCannotForgeItsRun (issue 22): a job attacks its own run from
// inside and exits 3 (testdata/hostilejob): it reads its runner's
// environment and memory map, ptraces it, writes a forged run log line (a
// successful exit with a forged output) to the runner's stdout through
// /proc/$PPID/fd/1, sends 40 messages to its run queue with the
// deduplication ids the runner used ("runner-1"…), and looks at a sibling
// run (a sleeper) to read its environments or signal it. The trigger,
// GITHUB_OUTPUT, the result file, `show` (the ledger) and `attach` must all
// report 3 and nothing forged.
//
// What the emulator cannot show: IAM. moto evaluates none; local mode's
// endpoint mirrors the two statements that deny a job's deployment session
// the run queues in AWS (broker-guard's NeverWriteToRunQueues, the queue
// policy's OnlyBrokerWritesOrManagesRun), so the job's sends are refused
// with AccessDenied naming the first. The job holds only the deployment
// role's session (its identity is printed and checked); what proves AWS's
// own deny is the IAM evaluation of the stack's policies (iamcheck). Were a
// send to get through, its forged bodies are not valid records and must
// make SQS drop nothing of the runner's. The uid separation and the sibling checks need root (the CI
// machine); without root the runner is still non-dumpable, so its
// environment, memory and descriptors stay refused, and the sibling checks
// are skipped (local mode says jobs share the user's uid then).
func TestHostileJobCannotForgeItsRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the hostile job attacks through Linux's /proc and ptrace")
	}
	dir, err := os.MkdirTemp("", "hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the job's uid runs the binary
		t.Fatal(err)
	}
	job := filepath.Join(dir, "hostilejob")
	if out, err := exec.Command("go", "build", "-o", job, "./testdata/hostilejob").CombinedOutput(); err != nil {
		t.Fatalf("building the hostile job: %v\n%s", err, out)
	}
	sleeper, err := filepath.Abs("../e2e/testdata/jobs/sleeper.sh")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`broker:
  name: hostile-broker
trusted_principals:
  - arn:aws:iam::111111111111:role/ci
runner:
  image: local/deploy-runner
  heartbeat: 1s
  grace: 2s
jobs:
  hostile:
    command: [%q]
    timeout: 2m
  sleeper:
    command: ["/bin/sh", %q]
    timeout: 2m
`, job, sleeper)), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2etest.StartBroker(t, bins, cfg, localbroker.Options{})
	root := os.Geteuid() == 0

	// The sibling run, running while the hostile one runs.
	sib := make(chan *os.Process, 1)
	sibDone := make(chan e2etest.Result, 1)
	go func() {
		sibDone <- e2etest.Trigger{Bins: bins, Started: func(p *os.Process) { sib <- p }}.Run(t, b, "sleeper")
	}()
	sibTrigger := <-sib
	waitUntil(t, time.Minute, "the sibling run's job to start", func() bool { return siblingJobs() > 0 })

	ghOut, result := filepath.Join(t.TempDir(), "github_output"), filepath.Join(t.TempDir(), "result.json")
	r := e2etest.Trigger{Bins: bins, Env: []string{"GITHUB_ACTIONS=true", "GITHUB_OUTPUT=" + ghOut}}.Run(t, b, "--result-file", result, "hostile")
	_ = sibTrigger.Signal(syscall.SIGTERM) // cancels the sleeper's run
	<-sibDone

	attacks := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "ATTACK" {
			attacks[f[1]] = f[2]
		}
	}
	t.Logf("job output:\n%s", r.Stdout)
	want := []string{"read-parent-environ", "read-parent-maps", "ptrace-parent", "write-parent-stdout", "runner-variables-in-env", "send-forged-records"}
	if root {
		want = append(want, "read-sibling-environ", "signal-sibling")
	}
	refused := 0
	for _, a := range want {
		switch attacks[a] {
		case "refused":
			refused++
		case "":
			t.Errorf("attack %s did not report", a)
		default:
			t.Errorf("attack %s succeeded", a)
		}
	}
	if !regexp.MustCompile(`ATTACK send-forged-records refused 0 of 40 .*AccessDenied.*NeverWriteToRunQueues`).MatchString(r.Stdout) {
		t.Errorf("the job's sends to its run queue were not all refused with AccessDenied (NeverWriteToRunQueues)")
	}
	if root && (!strings.Contains(r.Stdout, "SIBLINGS ") || strings.Contains(r.Stdout, "SIBLINGS 0\n")) {
		t.Errorf("the hostile job saw no sibling process: the sibling checks proved nothing")
	}
	if r.Code != 3 {
		t.Fatalf("trigger: exit %d, want the job's 3\n%s", r.Code, e2etest.Tail(r.Stderr, 20))
	}
	gh, _ := os.ReadFile(ghOut)
	res, _ := os.ReadFile(result)
	var rf struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(res, &rf); err != nil || rf.RunID == "" {
		t.Fatalf("result file %s: %v", res, err)
	}
	runID := rf.RunID
	// The job calls AWS as the deployment role's session named after the
	// run (STS drops a role's path from the session ARN).
	id := regexp.MustCompile(`IDENTITY (\S+)`).FindStringSubmatch(r.Stdout)
	if id == nil || !strings.HasSuffix(id[1], ":assumed-role/hostile-broker-hostile/"+runID) {
		t.Errorf("the job's AWS identity is %v, want the deployment role's session for run %s", id, runID)
	}
	if !strings.Contains(string(gh), "exit-code=3") || strings.Contains(string(gh), "FORGED") || strings.Contains(string(res), "FORGED") {
		t.Errorf("GITHUB_OUTPUT:\n%s\nresult file:\n%s", gh, res)
	}

	// The ledger (`show`) once the task has stopped, and `attach`, which
	// reads the run log.
	var run map[string]any
	waitUntil(t, time.Minute, "the ledger to record the run's end", func() bool {
		s := e2etest.Trigger{Bins: bins}.Run(t, b, "show", "--output", "json", runID)
		run = nil
		_ = json.Unmarshal([]byte(s.Stdout), &run)
		return run["outcome"] != nil && run["outcome"] != "running"
	})
	if run["exit_code"] != float64(3) || strings.Contains(fmt.Sprint(run), "FORGED") {
		t.Errorf("show: %v", run)
	}
	a := e2etest.Trigger{Bins: bins}.Run(t, b, "attach", runID)
	if a.Code != 3 || strings.Contains(a.Stdout+a.Stderr, "FORGED") {
		t.Errorf("attach: exit %d\n%s\n%s", a.Code, a.Stdout, e2etest.Tail(a.Stderr, 20))
	}
	t.Logf("RESULT scenario=hostile_job root=%v attacks_tried=%d refused=%d forged_messages=%q trigger_exit=%d show_exit=%v attach_exit=%d",
		root, len(want), refused, attacks["send-forged-records"], r.Code, run["exit_code"], a.Code)
}

// siblingJobs counts the processes of a running sleeper job.
func siblingJobs() int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if b, _ := os.ReadFile(d + "/cmdline"); strings.HasPrefix(string(b), "/bin/sh\x00") && strings.Contains(string(b), "sleeper.sh") {
			n++
		}
	}
	return n
}

// waitUntil polls cond (every 100 ms) until it holds or limit passes.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
