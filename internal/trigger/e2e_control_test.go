package trigger

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// Issue 25: --detach publishes, waits until the broker has taken the run,
// prints its run id on stdout and exits 0 without cancelling or releasing
// it; attach picks the run up and exits with the job's code (steps exits
// 3) with every line of it. This is the README's and TRIGGER.md's example:
//
//	id=$(deploy-trigger --detach steps lines=4 wait=FILE) && deploy-trigger attach "$id"
func TestLocalDetachThenAttach(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	goFile := gateFile(t)
	detach := triggerCmd(bin, b, "--detach", "steps", "lines=4", "wait="+goFile)
	var stdout, stderr testutil.SyncBuffer
	detach.Stdout, detach.Stderr = &stdout, &stderr
	if err := detach.Start(); err != nil {
		t.Fatal(err)
	}
	err := waitExit(t, detach, 60*time.Second, "with --detach", &stderr)
	if code := exitCodeOf(t, err); code != 0 {
		t.Fatalf("--detach: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	runID := strings.TrimSpace(stdout.String())
	if protocol.ValidateRunID(runID) != nil {
		t.Fatalf("--detach printed %q on stdout, want the run id alone\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "detached from run "+runID+" (accepted)") || !strings.Contains(stderr.String(), "deploy-trigger attach "+runID) {
		t.Errorf("stderr does not say it detached and how to attach:\n%s", stderr.String())
	}
	// The run went on: let it finish, and attach follows it to its end.
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	attach := triggerCmd(bin, b, "attach", runID)
	var out testutil.SyncBuffer
	attach.Stdout, attach.Stderr = &out, &out
	if err := attach.Start(); err != nil {
		t.Fatal(err)
	}
	err = waitExit(t, attach, 90*time.Second, "attaching to the detached run", &out)
	if code := exitCodeOf(t, err); code != 3 {
		t.Fatalf("attach: exit %d, want the job's 3\n%s", code, out.String())
	}
	for _, want := range []string{"step 1 out", "step 4 err"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("attach output lacks %q:\n%s", want, out.String())
		}
	}
}

// Issue 25: `deploy-trigger cancel RUN_ID` as the run's requester (another
// process, as from another shell) stops it: cancel exits 0 once the ledger
// says the run ended, naming who cancelled; the run's own trigger ends
// with 245. Before, "cancel" was read as a job name.
func TestLocalCancelCommandStopsTheRun(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	run := triggerCmd(bin, b, "sleeper")
	var stdout, stderr testutil.SyncBuffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(stdout.String(), "sleeper started") })
	m := runIDRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no run id in stderr:\n%s", stderr.String())
	}
	cancel := triggerCmd(bin, b, "cancel", m[1])
	var out testutil.SyncBuffer
	cancel.Stdout, cancel.Stderr = &out, &out
	if err := cancel.Start(); err != nil {
		t.Fatal(err)
	}
	err := waitExit(t, cancel, 90*time.Second, "cancelling", &out)
	if code := exitCodeOf(t, err); code != 0 {
		t.Fatalf("cancel: exit %d\n%s", code, out.String())
	}
	for _, want := range []string{"job           sleeper", "cancel of run " + m[1] + " sent as", "run " + m[1] + " stopped (cancelled), cancelled by arn:aws:sts::"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("cancel output lacks %q:\n%s", want, out.String())
		}
	}
	err = waitExit(t, run, 60*time.Second, "after the cancel command", &stderr)
	if code := exitCodeOf(t, err); code != exitcode.Cancelled {
		t.Fatalf("the run's trigger: exit %d, want %d\n%s", code, exitcode.Cancelled, stderr.String())
	}
	wantTaskStopped(t, b, stderr.String())
}
