package trigger

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// What approve, reject and cancel show of the run before they send
// anything (issue 24): job, parameters as the ledger holds them (secret
// values are never there), the verified and the claimed requester, since
// when the run waits, the request digest the decision is bound to.
func TestGoldenDecisionRunView(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	it := ledger.Item{RunID: "01JD0000000000000000000000", Status: ledger.AwaitingApproval, Job: "migrate-production",
		Params: map[string]string{"steps": "2", "token": "***"}, RequestedBy: "arn:aws:sts::111111111111:assumed-role/github-deployer/gha-org-app-1",
		Requester: "github-actions org/app@refs/heads/main by alice", RequestHash: strings.Repeat("3f", 32),
		CreatedAt: at, QueuedAt: at.Add(time.Second)}
	r := historyRun{RunID: it.RunID, Job: it.Job, Status: string(it.Status), Params: it.Params, RequestedBy: it.RequestedBy, Requester: it.Requester, item: it}
	got := describeRun(r, at.Add(4*time.Minute+13*time.Second))
	unknown := describeRun(historyRun{RunID: it.RunID, Job: "website", Status: "accepted"}, at)
	checkGolden(t, filepath.Join("testdata", "decision-run-view.golden"), got+"--\n"+unknown)
}

// Decisions and cancels carry a fresh decision id; only approve and reject
// carry the digest (approve.go, cancel.go set it).
func TestDecisionRequestCarriesADecisionID(t *testing.T) {
	a := &app{now: func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }}
	req := a.decisionRequest(protocol.KindCancel, "01JD0000000000000000000000", time.Minute)
	if protocol.ValidateRunID(req.DecisionID) != nil || req.DecisionID == req.RunID || req.RequestDigest != "" {
		t.Fatalf("cancel request %+v", req)
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
}

// approve, reject and cancel read the run before they send anything:
// without a ledger to read they stop with a usage error naming the flags,
// and send nothing (no AWS call is made: no credentials exist here).
func TestDecisionsNeedTheLedger(t *testing.T) {
	for _, cmd := range []string{"approve", "reject", "cancel"} {
		env := map[string]string{"DEPLOY_TRIGGER_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:deploy-broker"}
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), []string{cmd, "01M8PTK38HAY06XJQ608BEMSKP"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr, nil)
		if code := exitcode.Code(err); code != exitcode.Usage {
			t.Errorf("%s without --ledger-table: exit %d, want %d\n%s", cmd, code, exitcode.Usage, stderr.String())
		}
		for _, want := range []string{cmd + " reads the run from the run ledger", "--ledger-table NAME", "--reader-role-arn ARN", "nothing was sent"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr.String())
			}
		}
	}
}
