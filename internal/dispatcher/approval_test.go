package dispatcher_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
)

// approvers makes job website require approval by one of patterns.
func (e *env) approvers(patterns ...string) {
	j := e.cfg.Jobs["website"]
	j.Approvers = patterns
	e.cfg.Jobs["website"] = j
}

// Two moto identities: the requester (a session of github-deployer) and an
// approver (a session of jenkins-deployer).
func TestApprovalBySecondPerson(t *testing.T) {
	rec := &eventRecorder{}
	e := newEnv(t, withEvents(rec))
	e.approvers(jenkinsRole)
	runID := e.submit()
	e.wantStatus(runID, ledger.AwaitingApproval)
	if n := len(e.tasks(runID)); n != 0 {
		t.Fatalf("%d tasks before approval", n)
	}
	q := e.only(runID, protocol.TypeQueued).Queued
	if len(q.Approvers) != 1 || q.Approvers[0] != jenkinsRole {
		t.Errorf("queued record %+v, want the approvers", q)
	}
	if a := lastDecision(e, runID); a["decision"] != dispatcher.DecisionAwaitingApproval || !strings.Contains(a["reason"].(string), "awaiting approval by one of "+jenkinsRole) {
		t.Errorf("audit %v", a)
	}

	// The requester may not approve, not even from another session of its role.
	self := e.assume(deployerRole, "same-person-other-session")
	if err := e.shortAs(self, protocol.KindApprove, runID); err != nil {
		t.Fatal(err)
	}
	if a := lastDecision(e, runID); a["decision"] != dispatcher.DecisionDenied || !strings.Contains(a["reason"].(string), "requested the run and may not approve") {
		t.Errorf("self-approval audit %v", a)
	}
	// Nor may a principal that is not an approver.
	e.approvers("arn:aws:iam::111111111111:role/release-manager")
	jenkins := e.assume(jenkinsRole, "jenkins-7")
	if err := e.shortAs(jenkins, protocol.KindApprove, runID); err != nil {
		t.Fatal(err)
	}
	if a := lastDecision(e, runID); a["decision"] != dispatcher.DecisionDenied || !strings.Contains(a["reason"].(string), "is not among the approvers") {
		t.Errorf("non-approver audit %v", a)
	}
	e.wantStatus(runID, ledger.AwaitingApproval)

	// An approver approves: the run starts, and the ledger says who and when.
	e.approvers(jenkinsRole)
	if err := e.shortAs(jenkins, protocol.KindApprove, runID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(runID, ledger.Accepted)
	if n := len(e.tasks(runID)); n != 1 {
		t.Errorf("%d tasks after approval, want 1", n)
	}
	raw := e.rawItem(runID)
	if str(t, raw, ledger.AttrApproval) != ledger.ApprovalApproved || str(t, raw, ledger.AttrApprovalBy) != jenkins.ARN || str(t, raw, ledger.AttrApprovalAt) == "" {
		t.Errorf("ledger approval %q by %q at %q", str(t, raw, ledger.AttrApproval), str(t, raw, ledger.AttrApprovalBy), str(t, raw, ledger.AttrApprovalAt))
	}
	if got := e.types(runID); got != "queued,accepted" {
		t.Errorf("records %s, want queued,accepted", got)
	}
	var decisions []string
	for _, a := range e.auditsOf(runID) {
		decisions = append(decisions, a["decision"].(string))
	}
	if !strings.Contains(strings.Join(decisions, ","), "awaiting-approval,denied,denied,approved,accepted") {
		t.Errorf("audit decisions %v", decisions)
	}
	if got := states(rec.of(runID)); got != "requested,awaiting-approval,started" {
		t.Errorf("events %s", got)
	}
	// A second approval changes nothing.
	if err := e.shortAs(jenkins, protocol.KindApprove, runID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.tasks(runID)); n != 1 {
		t.Errorf("%d tasks after a second approval", n)
	}

	// An approver rejects another run: 241 with who rejected it.
	other := e.submit()
	if err := e.shortAs(jenkins, protocol.KindReject, other); err != nil {
		t.Fatal(err)
	}
	recs := e.records(other)
	if len(recs) != 2 || recs[1].Rejected == nil || recs[1].Rejected.Code != protocol.RejectDisapproved || !strings.Contains(recs[1].Rejected.Reason, jenkins.ARN) {
		t.Errorf("records of the rejected run %+v", recs)
	}
	e.wantStatus(other, ledger.Rejected)
	if n := len(e.tasks(other)); n != 0 {
		t.Errorf("the rejected run got %d tasks", n)
	}
}

// Approval, then a full concurrency slot: the approved run queues.
// A run nobody approves is refused when its request expires.
func TestApprovalThenConcurrencyAndExpiry(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "queue")
	first := e.submit()
	e.wantStatus(first, ledger.Accepted)
	e.approvers(jenkinsRole)
	second := e.submit()
	e.wantStatus(second, ledger.AwaitingApproval)
	if err := e.shortAs(e.assume(jenkinsRole, "jenkins-8"), protocol.KindApprove, second); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(second, ledger.Queued)
	e.stop(first)
	e.wantStatus(second, ledger.Accepted)

	third := e.submit()
	e.wantStatus(third, ledger.AwaitingApproval)
	e.clock.Add(8 * time.Minute)
	if err := e.invoke(e.event("scheduled-sweep.json", nil)); err != nil {
		t.Fatal(err)
	}
	if it := e.item(third); it.Status != ledger.Rejected || it.RejectCode != protocol.RejectExpired {
		t.Errorf("unapproved run after its expiry: %s %s", it.Status, it.RejectCode)
	}
}

// hookDynamo runs after once the first UpdateItem that match selects has
// been carried out: a second invocation that comes at that very moment.
type hookDynamo struct {
	dispatcher.DynamoAPI
	match func(*dynamodb.UpdateItemInput) bool
	after func()
	done  atomic.Bool
}

func (f *hookDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := f.DynamoAPI.UpdateItem(ctx, in, o...)
	if err == nil && f.match(in) && f.done.CompareAndSwap(false, true) {
		f.after()
	}
	return out, err
}

// An approval that arrives while a rejection is being written cannot start
// the run: before the fix the rejection first recorded the decision and
// then, in a second update, ended the run, and an approval in between
// launched the disapproved run.
func TestApprovalDuringARejectionDoesNotStartTheRun(t *testing.T) {
	hook := &hookDynamo{match: func(in *dynamodb.UpdateItemInput) bool {
		for _, av := range in.ExpressionAttributeValues {
			if s, ok := av.(*dbtypes.AttributeValueMemberS); ok && s.Value == "rejected" {
				return true
			}
		}
		return false
	}}
	e := newEnv(t, func(_ *dispatcher.Settings, c *dispatcher.Clients) { hook.DynamoAPI = c.Dynamo; c.Dynamo = hook })
	e.approvers(jenkinsRole)
	runID := e.submit()
	e.wantStatus(runID, ledger.AwaitingApproval)
	approver := e.assume(jenkinsRole, "jenkins-7")
	var approveErr error
	hook.after = func() { approveErr = e.shortAs(approver, protocol.KindApprove, runID) }
	if err := e.shortAs(approver, protocol.KindReject, runID); err != nil {
		t.Fatal(err)
	}
	if !hook.done.Load() {
		t.Fatal("no update wrote the rejection: the test no longer exercises the race")
	}
	if approveErr != nil {
		t.Fatal(approveErr)
	}
	if n := len(e.tasks(runID)); n != 0 {
		t.Fatalf("the disapproved run got %d tasks", n)
	}
	e.wantStatus(runID, ledger.Rejected)
	if it := e.item(runID); it.RejectCode != protocol.RejectDisapproved {
		t.Errorf("reject code %q, want %s", it.RejectCode, protocol.RejectDisapproved)
	}
}

// A rejection whose answer to the requester fails (SQS down after the
// ledger recorded the decision) keeps its audit line, and Lambda's retry of
// the reject finishes the answer: the requester gets its 241.
func TestRejectionWhoseAnswerFailsIsFinishedByTheRetry(t *testing.T) {
	f := &flakySQS{action: "SendMessage"}
	e := newEnv(t, func(_ *dispatcher.Settings, c *dispatcher.Clients) { f.SQSAPI = c.SQS; c.SQS = f })
	e.approvers(jenkinsRole)
	runID := e.submit()
	e.wantStatus(runID, ledger.AwaitingApproval)
	approver := e.assume(jenkinsRole, "jenkins-7")
	now := e.clock.Now()
	reject := e.sns(e.bodyAs(approver, &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindReject, RunID: runID, RequestedAt: now, ExpiresAt: now.Add(time.Minute),
		RequestDigest: e.requestDigest(runID), DecisionID: protocol.NewRunID(now)}))
	f.left.Store(100) // every SendMessage fails, past the SDK's retries
	if err := e.invoke(reject); err == nil {
		t.Fatal("the reject succeeded although its answer could not be sent")
	}
	f.left.Store(0)
	if got := e.types(runID); got != "queued" {
		t.Fatalf("records after the failed answer: %s", got)
	}
	if err := e.invoke(reject); err != nil { // Lambda's retry
		t.Fatal(err)
	}
	if got := e.types(runID); got != "queued,rejected" {
		t.Errorf("records after the retry: %s, want queued,rejected", got)
	}
	var decisions []string
	for _, a := range e.auditsOf(runID) {
		decisions = append(decisions, a["decision"].(string))
	}
	if got := strings.Join(decisions, " "); strings.Count(got, "disapproved") != 1 {
		t.Errorf("decisions %q, want one disapproved", got)
	}
	if it := e.item(runID); it.NotifiedAt.IsZero() || it.RejectCode != protocol.RejectDisapproved {
		t.Errorf("ledger %+v, want the rejection answered", it)
	}
}

// requestDigest is the run's request_hash as the ledger has it (what
// deploy-trigger approve reads and binds), or a digest no run has when the
// ledger does not know the run.
func (e *env) requestDigest(runID string) string {
	e.t.Helper()
	out, err := e.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &e.res.LedgerTable,
		Key: map[string]dbtypes.AttributeValue{ledger.AttrRunID: &dbtypes.AttributeValueMemberS{Value: runID}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if v, ok := out.Item[ledger.AttrRequestHash].(*dbtypes.AttributeValueMemberS); ok && v.Value != "" {
		return v.Value
	}
	return strings.Repeat("0", 64)
}

// decideAs sends an approve, reject or cancel from id with this digest
// (approve, reject) and a fresh decision id, and returns the broker's
// answer as the deciding deploy-trigger reads it: a Query of the history
// index (ledger.AnswerQuery).
func (e *env) decideAs(id prooftest.Identity, kind protocol.Kind, runID, digest string) ledger.Answer {
	e.t.Helper()
	now := e.clock.Now()
	decision := protocol.NewRunID(now)
	req := &protocol.Request{V: protocol.RequestVersion, Kind: kind, RunID: runID, RequestedAt: now, ExpiresAt: now.Add(time.Minute),
		RequestDigest: digest, DecisionID: decision}
	if err := e.invoke(e.sns(e.bodyAs(id, req))); err != nil {
		e.t.Fatal(err)
	}
	out, err := e.db.Query(context.Background(), ledger.AnswerQuery(e.res.LedgerTable, decision))
	if err != nil || len(out.Items) != 1 {
		e.t.Fatalf("answer to %s %s: %d items, %v", kind, decision, len(out.Items), err)
	}
	return ledger.DecodeAnswer(out.Items[0])
}

// Issue 24: an approval names the request it approves (its digest, the
// run's request_hash, which deploy-trigger approve read and showed); an
// approval of another request under the run id decides nothing.
func TestApprovalOfAnotherRequestDecidesNothing(t *testing.T) {
	e := newEnv(t)
	e.approvers(jenkinsRole)
	runID := e.submit()
	e.wantStatus(runID, ledger.AwaitingApproval)
	jenkins := e.assume(jenkinsRole, "jenkins-7")
	other := strings.Repeat("ab", 32)
	for _, kind := range []protocol.Kind{protocol.KindApprove, protocol.KindReject} {
		ans := e.decideAs(jenkins, kind, runID, other)
		if ans.Outcome != dispatcher.DecisionDenied || !strings.Contains(ans.Reason, "names request digest "+other) || ans.By != jenkins.ARN || ans.RunID != runID {
			t.Errorf("%s of another request: answer %+v, want denied naming the digest", kind, ans)
		}
		e.wantStatus(runID, ledger.AwaitingApproval)
	}
	if n := len(e.tasks(runID)); n != 0 {
		t.Fatalf("%d tasks after approvals of another request", n)
	}
	if ans := e.decideAs(jenkins, protocol.KindApprove, runID, e.requestDigest(runID)); ans.Outcome != dispatcher.DecisionApproved {
		t.Errorf("approval of the run's request: answer %+v", ans)
	}
	e.wantStatus(runID, ledger.Accepted)
}

// Issue 25: the broker's answer to approve, reject and the cancel command
// reaches the decider through the ledger, whatever it is: denied (with the
// reason) for the requester approving its own run or a stranger
// cancelling, approved, disapproved, ignored for a decided run.
func TestApprovalAndCancelAnswerTheDecider(t *testing.T) {
	e := newEnv(t)
	e.approvers(jenkinsRole)
	runID := e.submit()
	self := e.assume(deployerRole, "same-person-other-session")
	if ans := e.decideAs(self, protocol.KindApprove, runID, e.requestDigest(runID)); ans.Outcome != dispatcher.DecisionDenied || !strings.Contains(ans.Reason, "requested the run and may not approve") {
		t.Errorf("self-approval answer %+v", ans)
	}
	jenkins := e.assume(jenkinsRole, "jenkins-7")
	if ans := e.decideAs(jenkins, protocol.KindCancel, runID, ""); ans.Outcome != dispatcher.DecisionDenied || !strings.Contains(ans.Reason, "may not cancel run "+runID) {
		t.Errorf("a stranger's cancel: answer %+v", ans)
	}
	e.wantStatus(runID, ledger.AwaitingApproval)
	if ans := e.decideAs(jenkins, protocol.KindReject, runID, e.requestDigest(runID)); ans.Outcome != dispatcher.DecisionDisapproved || ans.Kind != string(protocol.KindReject) {
		t.Errorf("rejection answer %+v", ans)
	}
	if ans := e.decideAs(jenkins, protocol.KindApprove, runID, e.requestDigest(runID)); ans.Outcome != dispatcher.DecisionIgnored || !strings.Contains(ans.Reason, "does not await approval") {
		t.Errorf("approval of a rejected run: answer %+v", ans)
	}
}
