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
	// A running run (cancel's view) does not wait: it says when it was
	// requested, not "waiting since".
	running := ledger.Item{RunID: it.RunID, Status: ledger.Accepted, Job: "website", RequestedBy: it.RequestedBy, Requester: it.Requester,
		RequestHash: it.RequestHash, RequestedAt: at, CreatedAt: at.Add(time.Second)}
	run := describeRun(historyRun{RunID: it.RunID, Job: "website", Status: string(running.Status), RequestedBy: it.RequestedBy, Requester: it.Requester, item: running}, at.Add(time.Minute))
	checkGolden(t, filepath.Join("testdata", "decision-run-view.golden"), got+"--\n"+unknown+"--\n"+run)
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
// without a ledger table they look for it in the broker's published view
// (issue 25); when that cannot be read either (no credentials exist here:
// the only AWS call, the view's GetItem, fails) they stop, naming the
// cause and the flags, and send nothing.
func TestDecisionsNeedTheLedger(t *testing.T) {
	// No credentials anywhere the SDK looks (it reads the process's
	// environment too), and an endpoint on a closed loopback port: no AWS
	// endpoint is ever contacted.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, cmd := range []string{"approve", "reject", "cancel"} {
		env := map[string]string{"DEPLOY_TRIGGER_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:deploy-broker",
			"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), []string{cmd, "01M8PTK38HAY06XJQ608BEMSKP"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr, nil)
		if code := exitcode.Code(err); code != exitcode.Broker {
			t.Errorf("%s without --ledger-table or credentials: exit %d, want %d\n%s", cmd, code, exitcode.Broker, stderr.String())
		}
		for _, want := range []string{cmd + " reads the run from the run ledger", "published view", "no AWS credentials were found", "--ledger-table NAME", "--reader-role-arn ARN", "nothing was sent"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr.String())
			}
		}
	}
}
