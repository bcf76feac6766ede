package reliability

import (
	"context"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// awaitingRE finds the run id in the waiting requester's message.
var awaitingRE = regexp.MustCompile(`deploy-trigger approve ([0-9A-Z]{26}), or reject ([0-9A-Z]{26})`)

// startRequester runs `deploy-trigger gated` as local mode's own identity
// (a session of role ci) and returns the process, its output and the run
// id its waiting message names (issue 25: the real id, not RUN_ID).
func startRequester(t *testing.T, b *localbroker.Broker) (*exec.Cmd, *testutil.SyncBuffer, string) {
	t.Helper()
	cmd := exec.Command(bins.Trigger, "gated")
	cmd.Env = append(e2etest.CleanEnv(), b.Env()...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for awaitingRE.FindStringSubmatch(out.String()) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the requester's trigger never said the run awaits approval with its run id:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := awaitingRE.FindStringSubmatch(out.String())
	if m[1] != m[2] || protocol.ValidateRunID(m[1]) != nil || !strings.Contains(out.String(), "run "+m[1]+" requested") {
		t.Fatalf("the waiting message names %q and %q, not the run's id:\n%s", m[1], m[2], out.String())
	}
	return cmd, out, m[1]
}

// TestApprovalByASecondIdentityInLocalMode: local mode with two moto
// identities (issues 24, 25). A run of job gated (approvers: role
// approver) requested as local mode's own identity waits, and its trigger
// names the run id to approve. `deploy-trigger approve` shows the run
// (job, requester, since when it waits, the request's digest) before
// anything is sent; as the requester it is refused by the broker and
// exits 241 with the broker's reason (before: exit 0, the denial only in
// the audit log); without a terminal it needs --yes; as a session of role
// approver it exits 0 once the approval is recorded, and the requester's
// trigger says who approved and exits with the job's code.
func TestApprovalByASecondIdentityInLocalMode(t *testing.T) {
	b := e2etest.StartBroker(t, bins, configPath, localbroker.Options{})
	ctx := context.Background()
	requester, reqOut, runID := startRequester(t, b)

	self := e2etest.Trigger{Bins: bins}.Run(t, b, "approve", "--yes", runID)
	if self.Code != 241 || !strings.Contains(self.Stderr, "requested the run and may not approve") {
		t.Fatalf("the requester approving its own run: exit %d, want 241 with the broker's reason\n%s", self.Code, self.Stderr)
	}
	for _, want := range []string{"run " + runID + " (awaiting-approval)", "job           gated", "requested by  arn:aws:sts::111111111111:assumed-role/ci/", "claimed       local", "waiting since ", "request       sha256:"} {
		if !strings.Contains(self.Stderr, want) {
			t.Errorf("approve did not show %q of the run:\n%s", want, self.Stderr)
		}
	}
	env, arn, err := b.EnvAs(ctx, b.ApproverRole(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	unconfirmed := e2etest.Trigger{Bins: bins, Env: env}.Run(t, b, "approve", runID)
	if unconfirmed.Code != 248 || !strings.Contains(unconfirmed.Stderr, "stdin is not a terminal") {
		t.Fatalf("approve without a terminal nor --yes: exit %d, want 248\n%s", unconfirmed.Code, unconfirmed.Stderr)
	}
	// On a terminal the approver reads the run and types yes.
	code, screen := approveOnTerminal(t, b, env, runID)
	if code != 0 || !strings.Contains(screen, "Approve run "+runID+" of job gated? Type yes to continue") || !strings.Contains(screen, "run "+runID+" approved by "+arn) {
		t.Fatalf("approve as %s on a terminal: exit %d\n%s", arn, code, screen)
	}
	done := make(chan error, 1)
	go func() { done <- requester.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the requester's trigger: %v\n%s", err, reqOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the requester's trigger did not end after the approval:\n%s", reqOut.String())
	}
	if !strings.Contains(reqOut.String(), "approved by "+arn+" (verified)") || !strings.Contains(reqOut.String(), "gated job ran") {
		t.Errorf("the requester's trigger does not say who approved, or the job did not run:\n%s", reqOut.String())
	}
	t.Logf("RESULT scenario=approval_two_identities self_approval_exit=%d approve_exit=%d approver=%s", self.Code, code, arn)
}

// approveOnTerminal runs `deploy-trigger approve runID` with env on a
// pseudo-terminal, answers yes to its question and returns its exit code
// and everything it wrote.
func approveOnTerminal(t *testing.T, b *localbroker.Broker, env []string, runID string) (int, string) {
	t.Helper()
	cmd := exec.Command(bins.Trigger, "approve", runID)
	cmd.Env = append(append(e2etest.CleanEnv(), b.Env()...), env...)
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	screen := &testutil.SyncBuffer{}
	go func() { _, _ = io.Copy(screen, ptmx) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(screen.String(), "Type yes to continue") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("approve never asked:\n%s", screen.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte("yes\n")); err != nil {
		t.Fatal(err)
	}
	ended, err := testutil.WaitOrKill(cmd, 90*time.Second)
	if !ended {
		t.Fatalf("approve did not end after yes:\n%s", screen.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	// The copy may still hold the last lines: wait for the answer's.
	for i := 0; i < 200 && !strings.Contains(screen.String(), "approved by") && !strings.Contains(screen.String(), "error:"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return code, screen.String()
}

// TestApprovalRejectAndCancelAnswerInLocalMode (issue 25): a rejection
// exits 0 once recorded and the requester's trigger ends 241 naming the
// approver; `deploy-trigger cancel` by a principal that is neither the
// requester nor an operator exits 241 with the broker's reason and leaves
// the run waiting; --detach leaves a run that awaits approval and prints
// its id; the requester's own cancel then ends it.
func TestApprovalRejectAndCancelAnswerInLocalMode(t *testing.T) {
	b := e2etest.StartBroker(t, bins, configPath, localbroker.Options{})
	ctx := context.Background()
	env, arn, err := b.EnvAs(ctx, b.ApproverRole(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	requester, reqOut, runID := startRequester(t, b)
	r := e2etest.Trigger{Bins: bins, Env: env}.Run(t, b, "reject", "--yes", runID)
	if r.Code != 0 || !strings.Contains(r.Stderr, "run "+runID+" rejected by "+arn) {
		t.Fatalf("reject as %s: exit %d\n%s", arn, r.Code, r.Stderr)
	}
	if err := requester.Wait(); err == nil || !strings.Contains(reqOut.String(), "rejected by "+arn+" (approver)") {
		t.Errorf("the requester's trigger after the rejection: %v\n%s", err, reqOut.String())
	}

	detached := e2etest.Trigger{Bins: bins}.Run(t, b, "--detach", "gated")
	id := strings.TrimSpace(detached.Stdout)
	if detached.Code != 0 || protocol.ValidateRunID(id) != nil || !strings.Contains(detached.Stderr, "detached from run "+id+" (awaiting approval)") {
		t.Fatalf("--detach of a run that awaits approval: exit %d\nstdout:\n%s\nstderr:\n%s", detached.Code, detached.Stdout, detached.Stderr)
	}
	stranger := e2etest.Trigger{Bins: bins, Env: env}.Run(t, b, "cancel", id)
	if stranger.Code != 241 || !strings.Contains(stranger.Stderr, "the broker refused to cancel run "+id+": "+arn+" may not cancel") {
		t.Fatalf("cancel by %s: exit %d, want 241 with the reason\n%s", arn, stranger.Code, stranger.Stderr)
	}
	own := e2etest.Trigger{Bins: bins}.Run(t, b, "cancel", id)
	if own.Code != 0 || !strings.Contains(own.Stderr, "run "+id+" stopped (cancelled before it started), cancelled by arn:aws:sts::111111111111:assumed-role/ci/") {
		t.Fatalf("the requester's cancel: exit %d\n%s", own.Code, own.Stderr)
	}
	t.Logf("RESULT scenario=decisions_answer reject_exit=%d stranger_cancel_exit=%d own_cancel_exit=%d", r.Code, stranger.Code, own.Code)
}
