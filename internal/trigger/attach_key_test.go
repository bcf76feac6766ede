package trigger

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/ledgertest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
)

// The case issue 24 reported: Jenkins starts job website with
// --idempotency-key jenkins-release-42; another principal starts job
// migrate with the same key (a broker from before keys had owners let it:
// the ledger may hold such runs). attach --key took the newest run with the
// key, the stranger's, and reported its result and requested-by. Now attach
// --key --job website, as Jenkins (any session of its role: its verified
// identity, from STS), follows Jenkins' run; the stranger, asking for
// Jenkins' job, finds none of its own.
func TestAttachKeyFollowsOnlyTheCallersOwnRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, _, cfg := ledgertest.New(t)
	jenkins := prooftest.MustAssume(t, cfg, "arn:aws:iam::123456789012:role/jenkins-deployer", "jenkins-release-42")
	stranger := prooftest.MustAssume(t, cfg, "arn:aws:iam::123456789012:role/github-deployer", "gha-org-app-1")
	const key = "jenkins-release-42"
	now := time.Now().UTC().Truncate(time.Millisecond)
	run := func(i int, job string, by prooftest.Identity) string {
		id := protocol.NewRunID(now.Add(time.Duration(i) * time.Millisecond))
		it := ledger.Item{RunID: id, Status: ledger.Launching, Job: job, RequestedAt: now, CreatedAt: now, LeaseUntil: now,
			ClaimToken: ledger.NewToken(), RequestHash: "h", RequestedBy: by.ARN, IdempotencyKey: key}
		if err := store.Claim(ctx, it); err != nil {
			t.Fatal(err)
		}
		if err := store.Reject(ctx, id, protocol.RejectLaunch, "run of "+by.ARN, time.Time{}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	mine := run(0, "website", jenkins)
	_ = run(1, "migrate", stranger) // newer, another job, another principal
	attach := func(id prooftest.Identity, job string) (string, int) {
		creds, err := id.Creds.Retrieve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"AWS_ENDPOINT_URL": aws.ToString(cfg.BaseEndpoint), "AWS_REGION": cfg.Region,
			"AWS_ACCESS_KEY_ID": creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY": creds.SecretAccessKey, "AWS_SESSION_TOKEN": creds.SessionToken}
		var out, errb bytes.Buffer
		a := newApp(func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb, nil)
		err = a.runLogs(ctx, "attach", []string{"--key", key, "--job", job, "--ledger-table", ledgertest.Table, "--log-group", "/deploy-broker/runs",
			"--topic-arn", "arn:aws:sns:" + cfg.Region + ":123456789012:broker-requests"})
		a.flush()
		return errb.String() + fmtErr(err), exitcode.Code(err)
	}
	// Jenkins' attach finds Jenkins' run, not the newer stranger's.
	if msg, code := attach(jenkins, "website"); code != exitcode.Rejected || !strings.Contains(msg, "run "+mine+" was rejected") {
		t.Errorf("Jenkins' attach --key: exit %d, %q; want run %s (Jenkins' own)", code, msg, mine)
	}
	// Another Jenkins session (a later build) of the same role: its run too.
	if msg, _ := attach(prooftest.MustAssume(t, cfg, "arn:aws:iam::123456789012:role/jenkins-deployer", "jenkins-release-43"), "website"); !strings.Contains(msg, "run "+mine+" ") {
		t.Errorf("another session of Jenkins' role: %q, want run %s", msg, mine)
	}
	// The stranger asking for Jenkins' job and key finds none of its own.
	if msg, code := attach(stranger, "website"); code != exitcode.Rejected || strings.Contains(msg, mine) || !strings.Contains(msg, "another principal's") {
		t.Errorf("stranger's attach --key --job website: exit %d, %q; want no run of its own", code, msg)
	}
	// --key without --job is a usage error.
	var errb bytes.Buffer
	a := newApp(func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &errb, nil)
	if err := a.runLogs(ctx, "attach", []string{"--key", key, "--ledger-table", "t", "--log-group", "g"}); exitcode.Code(err) != exitcode.Usage || !strings.Contains(fmtErr(err), "--key needs --job") {
		t.Errorf("--key without --job: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
