package dispatcher_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// Every principal below is a distinct session made in moto
// (sts:AssumeRole): moto's GetCallerIdentity answers for the session's own
// access key, so the dispatcher learns each one from STS, not from the
// message. Default moto does not check the signatures themselves: that is
// TestTamperedProofFailsAtSTS's job.

func lastDecision(e *env, runID string) map[string]any {
	a := e.auditsOf(runID)
	if len(a) == 0 {
		return nil
	}
	return a[len(a)-1]
}

// A cancel from a principal that did not request the run is refused: the
// task keeps running, the audit line says who tried.
func TestCancelFromAnotherPrincipalIsDenied(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	jenkins := e.assume(jenkinsRole, "jenkins-42")
	if err := e.shortAs(jenkins, protocol.KindCancel, runID); err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(e.describe(arn).LastStatus); st != "RUNNING" {
		t.Errorf("task is %s after another principal's cancel, want RUNNING", st)
	}
	a := lastDecision(e, runID)
	if a["decision"] != dispatcher.DecisionDenied || a["principal"] != jenkins.ARN ||
		!strings.Contains(a["reason"].(string), jenkins.ARN+" may not cancel run "+runID+", requested by "+e.id.ARN) {
		t.Errorf("audit = %v", a)
	}
	if it := e.item(runID); !it.CancelAsked.IsZero() || it.CancelledBy != "" {
		t.Errorf("ledger records a cancel: %+v", it)
	}
	// Nor may it release (delete) the run's queue.
	if err := e.shortAs(jenkins, protocol.KindRelease, runID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(runID); !ok {
		t.Error("another principal's release deleted the run queue")
	}
	if a := lastDecision(e, runID); a["decision"] != dispatcher.DecisionDenied {
		t.Errorf("release audit = %v", a)
	}
	// A principal of another account with the same role name is another
	// principal: ARNs are compared with their account, never by name.
	twin := e.assume("arn:aws:iam::333333333333:role/github-deployer", "gha-org-app-1")
	if err := e.shortAs(twin, protocol.KindCancel, runID); err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(e.describe(arn).LastStatus); st != "RUNNING" {
		t.Errorf("task is %s after a same-named role of another account cancelled, want RUNNING", st)
	}
}

// Another session of the requester's own role may cancel (a CI job's
// cancel step may hold a fresh session), and the StopTask reason names the
// principal that cancelled, not the requester.
func TestCancelBySameRoleOtherSessionNamesTheCanceller(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	other := e.assume(deployerRole, "gha-org-app-1-cancel")
	if err := e.shortAs(other, protocol.KindCancel, runID); err != nil {
		t.Fatal(err)
	}
	task := e.describe(arn)
	if aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(task.StoppedReason), "cancelled by "+other.ARN) {
		t.Errorf("task %s %q, want stopped naming %s", aws.ToString(task.LastStatus), aws.ToString(task.StoppedReason), other.ARN)
	}
	if it := e.item(runID); it.CancelledBy != other.ARN || it.RequestedBy != e.id.ARN {
		t.Errorf("ledger requested_by %q cancelled_by %q", it.RequestedBy, it.CancelledBy)
	}
}

// An operator may cancel and release any run.
func TestOperatorMayCancelAnyRun(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	ops := e.assume("arn:aws:iam::222222222222:role/ops", "oncall-alice")
	if err := e.shortAs(ops, protocol.KindCancel, runID); err != nil {
		t.Fatal(err)
	}
	if task := e.describe(arn); aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(task.StoppedReason), "cancelled by "+ops.ARN) {
		t.Errorf("task %s %q", aws.ToString(task.LastStatus), aws.ToString(task.StoppedReason))
	}
	if err := e.shortAs(ops, protocol.KindRelease, runID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(runID); ok {
		t.Error("the operator's release left the queue")
	}
}

// A cancel that arrives before the run request, from a principal that may
// not control that run, does not close the run id: the run goes ahead.
// The requester's own early cancel still does.
func TestEarlyCancelByAnotherPrincipalDoesNotBlockTheRun(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	jenkins := e.assume(jenkinsRole, "jenkins-42")
	if err := e.shortAs(jenkins, protocol.KindCancel, r.RunID); err != nil {
		t.Fatal(err)
	}
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if rec := e.only(r.RunID, protocol.TypeAccepted); rec.Accepted.RequestedBy != e.id.ARN {
		t.Errorf("accepted %+v", rec.Accepted)
	}
	if n := len(e.tasks(r.RunID)); n != 1 {
		t.Errorf("%d tasks, want 1", n)
	}

	own := e.request()
	if err := e.short(protocol.KindCancel, own.RunID); err != nil {
		t.Fatal(err)
	}
	if err := e.run(own); err != nil {
		t.Fatal(err)
	}
	if rec := e.only(own.RunID, protocol.TypeRejected); rec.Rejected.Code != protocol.RejectCancelled {
		t.Errorf("own early cancel: %+v", rec.Rejected)
	}
	if n := len(e.tasks(own.RunID)); n != 0 {
		t.Errorf("own early cancel: %d tasks", n)
	}
}

// The run's claim that replaces such an early cancel, its answer lost: the
// repeat fails its condition on its own write and must know it as its own
// (before the fix the invocation failed and the run waited for a retry).
func TestClaimOverAnEarlyCancelWhoseAnswerIsLostGoesOn(t *testing.T) {
	opt, f := withLostUpdate(nil)
	f.losePut = func(in *dynamodb.PutItemInput) bool {
		return in.ConditionExpression != nil && strings.Contains(*in.ConditionExpression, "#token = :token")
	}
	e := newEnv(t, opt)
	r := e.request()
	if err := e.shortAs(e.assume(jenkinsRole, "jenkins-42"), protocol.KindCancel, r.RunID); err != nil {
		t.Fatal(err)
	}
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if f.lost.Load() == 0 {
		t.Fatal("no claim replaced the early cancel: the test no longer exercises it")
	}
	e.only(r.RunID, protocol.TypeAccepted)
	if n := len(e.tasks(r.RunID)); n != 1 {
		t.Errorf("%d tasks, want 1", n)
	}
}

// allowed_principals: a verified principal that may not run the job gets
// an unauthorized rejection on its own queue, naming the job and itself
// (deploy-trigger exits 241 with it); session-name patterns match.
func TestAllowedPrincipals(t *testing.T) {
	e := newEnv(t)
	migrate := func(r *protocol.Request) { r.Job, r.Params = "migrate", map[string]string{"steps": "1"} }
	for _, c := range []struct {
		role, session string
		ok            bool
	}{
		{deployerRole, "gha-org-app-7", true},
		{jenkinsRole, "release-7", true},
		{jenkinsRole, "jenkins-7", false},
		{"arn:aws:iam::999999999999:role/github-deployer", "gha-org-app-7", false},
	} {
		id := e.assume(c.role, c.session)
		r := e.request(migrate)
		if err := e.runAs(id, r); err != nil {
			t.Fatal(err)
		}
		recs := e.records(r.RunID)
		if len(recs) != 1 {
			t.Fatalf("%s: records %+v", id.ARN, recs)
		}
		if c.ok {
			if recs[0].Type != protocol.TypeAccepted || recs[0].Accepted.RequestedBy != id.ARN {
				t.Errorf("%s: %+v, want accepted", id.ARN, recs[0])
			}
			continue
		}
		want := id.ARN + ` may not run job "migrate": it is not in the job's allowed_principals`
		if recs[0].Type != protocol.TypeRejected || recs[0].Rejected.Code != protocol.RejectUnauthorized || recs[0].Rejected.Reason != want {
			t.Errorf("%s: %+v, want unauthorized %q", id.ARN, recs[0], want)
		}
		if it := e.item(r.RunID); it.RequestedBy != id.ARN || it.Status != ledger.Rejected {
			t.Errorf("ledger %+v", it)
		}
	}
	// A job without allowed_principals: any trusted principal, and only those.
	intruder := e.assume("arn:aws:iam::999999999999:role/intruder", "mallory")
	r := e.request()
	if err := e.runAs(intruder, r); err != nil {
		t.Fatal(err)
	}
	if rec := e.only(r.RunID, protocol.TypeRejected); rec.Rejected.Code != protocol.RejectUnauthorized ||
		!strings.Contains(rec.Rejected.Reason, intruder.ARN+` may not run job "website": it is not one of this broker's trusted principals`) {
		t.Errorf("untrusted: %+v", rec.Rejected)
	}
}

// A valid proof copied onto another request is refused, and so is a proof
// for another broker's topic: nothing is created for either.
func TestCopiedOrMisaddressedProofCreatesNothing(t *testing.T) {
	e := newEnv(t)
	orig := e.request()
	e.body(orig) // gives orig a valid proof; the copies below keep it
	for name, r := range map[string]*protocol.Request{
		"new run id": func() *protocol.Request {
			c := *orig
			c.RunID = protocol.NewRunID(e.clock.Now())
			return &c
		}(),
		"changed parameter": func() *protocol.Request {
			c := *orig
			c.RunID = protocol.NewRunID(e.clock.Now()) // a fresh id, so only the proof can refuse it
			c.Params = map[string]string{"version": "6.6.6"}
			return &c
		}(),
	} {
		if err := e.run(r); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.queueURL(r.RunID); ok {
			t.Errorf("%s: a queue was made", name)
		}
		if _, ok, _ := e.d.LedgerGet(context.Background(), r.RunID); ok {
			t.Errorf("%s: a ledger item was made", name)
		}
		if a := lastDecision(e, r.RunID); a["decision"] != dispatcher.DecisionRefused || !strings.Contains(a["reason"].(string), "proof bound to another request") {
			t.Errorf("%s: audit %v", name, a)
		}
	}
	other := e.request()
	if err := prooftest.Sign(other, e.id, strings.Replace(e.res.TopicARN, ":"+e.name, ":other-broker", 1), motoServer.URL, other.RequestedAt); err != nil {
		t.Fatal(err)
	}
	if err := e.run(other); err != nil {
		t.Fatal(err)
	}
	if a := lastDecision(e, other.RunID); a["decision"] != dispatcher.DecisionRefused || !strings.Contains(a["reason"].(string), "audience") {
		t.Errorf("other broker's topic: audit %v", a)
	}
	if e.queueCount() != 0 {
		t.Errorf("%d queues were made", e.queueCount())
	}
}

// STS unreachable is not a refusal: the invocation fails so that Lambda
// retries, and nothing is created meanwhile.
func TestUnreachableSTSIsRetried(t *testing.T) {
	e := newEnv(t, func(s *dispatcher.Settings, _ *dispatcher.Clients) {
		s.STSTransport = failingTransport{}
	})
	r := e.request()
	err := e.run(r)
	if err == nil || !strings.Contains(err.Error(), "STS unavailable") {
		t.Fatalf("err = %v, want a retryable STS failure", err)
	}
	if _, ok := e.queueURL(r.RunID); ok {
		t.Error("a queue was made before the proof was verified")
	}
}

type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("connection refused")
}

// With moto's request signature checking switched on, a proof whose bound
// headers were edited after signing (here: re-bound to another request's
// digest, which passes every offline check) is refused by STS itself, and
// nothing is created. This is the cryptographic half of the binding; the
// rest of the dispatcher tests run with checking off (moto's default).
func TestTamperedProofFailsAtSTS(t *testing.T) {
	srv, err := moto.Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	awsCfg, err := srv.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A real IAM user (moto checks its keys once auth is on).
	alice := prooftest.MustCreateUser(t, srv.URL, "alice")
	cfg := testCatalogue(t, "authon")
	cfg.TrustedPrincipals = append(cfg.TrustedPrincipals, alice.ARN)
	res, err := localbroker.Provision(context.Background(), awsCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	d := dispatcher.New(cfg, dispatcher.Settings{Cluster: res.ClusterARN, LedgerTable: res.LedgerTable,
		Subnets: res.Subnets[:1], SecurityGroups: res.SecurityGroups, AccountID: res.AccountID, Region: res.Region,
		STSEndpoint: srv.URL}, dispatcher.Clients{SQS: sqs.NewFromConfig(awsCfg), ECS: ecs.NewFromConfig(awsCfg), Dynamo: dynamodb.NewFromConfig(awsCfg)},
		slog.New(slog.NewJSONHandler(logs, nil)))
	if err := prooftest.EnableMotoAuth(srv.URL); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(id string) *protocol.Request {
		return &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindCancel, RunID: id, RequestedAt: now, ExpiresAt: now.Add(time.Minute)}
	}
	// Genuine: verifies (a cancel of an unknown, too-old run id: ignored).
	genuine := mk("01JD5Q3ZC8W2V9T6R4N1M7K0HX")
	if err := prooftest.Sign(genuine, alice, res.TopicARN, srv.URL, now); err != nil {
		t.Fatal(err)
	}
	p, exp, err := identity.RequestProof(genuine, res.TopicARN)
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{Partition: "aws", Region: moto.Region, Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Verify(context.Background(), p, exp); err != nil || got.ARN != alice.ARN {
		t.Fatalf("genuine proof with moto auth on: %+v %v", got, err)
	}
	// Tampered: the proof of genuine, its digest header rewritten to bind
	// it to another request; only STS's signature check can catch it.
	other := mk("01JD5Q3ZC8W2V9T6R4N1M7K0HY")
	other.Proof = prooftest.Rebind(t, genuine.Proof, identity.DigestHex(identity.RequestDigest(other, res.TopicARN)))
	po, expo, err := identity.RequestProof(other, res.TopicARN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Check(po, expo); err != nil {
		t.Fatalf("the tampered proof should pass the offline checks: %v", err)
	}
	_, err = v.Verify(context.Background(), po, expo)
	if !errors.Is(err, identity.ErrRefused) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("tampered proof: %v, want STS to refuse its signature", err)
	}
	// Through the dispatcher: refused before any other call, nothing done.
	if err := d.HandleRequest(context.Background(), body(t, other)); err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); !strings.Contains(l, `"decision":"refused"`) || !strings.Contains(l, "SignatureDoesNotMatch") {
		t.Errorf("dispatcher log: %s", l)
	}
}

// Review finding 4: a run that only a session pattern allowed
// (allowed_principals "…:assumed-role/jenkins-deployer/release-*") is
// controlled only by sessions matching that pattern: another session of the
// same role (jenkins-7, which may not run the job) may neither cancel nor
// release it; a matching session (release-8) may.
func TestSessionPatternRunIsControlledOnlyByMatchingSessions(t *testing.T) {
	e := newEnv(t)
	migrate := func(r *protocol.Request) { r.Job, r.Params = "migrate", map[string]string{"steps": "1"} }
	rel := e.assume(jenkinsRole, "release-7")
	r := e.request(migrate)
	if err := e.runAs(rel, r); err != nil {
		t.Fatal(err)
	}
	e.only(r.RunID, protocol.TypeAccepted)
	taskARN := e.item(r.RunID).TaskARN
	if taskARN == "" {
		t.Fatal("no task recorded")
	}
	other := e.assume(jenkinsRole, "jenkins-7")
	if err := e.shortAs(other, protocol.KindCancel, r.RunID); err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(e.describe(taskARN).LastStatus); st != "RUNNING" {
		t.Errorf("task is %s after a non-matching session's cancel, want RUNNING", st)
	}
	if a := lastDecision(e, r.RunID); a["decision"] != dispatcher.DecisionDenied || !strings.Contains(a["reason"].(string), "release-*") {
		t.Errorf("cancel audit = %v", a)
	}
	if err := e.shortAs(other, protocol.KindRelease, r.RunID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(r.RunID); !ok {
		t.Error("a non-matching session's release deleted the run queue")
	}
	matching := e.assume(jenkinsRole, "release-8")
	if err := e.shortAs(matching, protocol.KindCancel, r.RunID); err != nil {
		t.Fatal(err)
	}
	if it := e.item(r.RunID); it.CancelledBy != matching.ARN {
		t.Errorf("cancelled_by %q, want %s", it.CancelledBy, matching.ARN)
	}
	// Nor does the non-matching session's cancel before the run request
	// close the run id: the run goes ahead.
	r2 := e.request(migrate)
	if err := e.shortAs(other, protocol.KindCancel, r2.RunID); err != nil {
		t.Fatal(err)
	}
	if err := e.runAs(rel, r2); err != nil {
		t.Fatal(err)
	}
	e.only(r2.RunID, protocol.TypeAccepted)
}
