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
)

// limit gives job website a concurrency limit (the dispatcher shares e.cfg).
func (e *env) limit(n int, onFull string) {
	j := e.cfg.Jobs["website"]
	j.Concurrency, j.OnFull = n, onFull
	e.cfg.Jobs["website"] = j
}

// submit sends a website run request and returns its run id.
func (e *env) submit() string {
	e.t.Helper()
	r := e.request()
	if err := e.run(r); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Add(time.Millisecond) // distinct run ids and times
	return r.RunID
}

func (e *env) types(runID string) string {
	var s []string
	for _, r := range e.records(runID) {
		s = append(s, string(r.Type))
	}
	return strings.Join(s, ",")
}

func (e *env) wantStatus(runID string, status ledger.Status) {
	e.t.Helper()
	if it := e.item(runID); it.Status != status {
		e.t.Errorf("run %s is %s, want %s", runID, it.Status, status)
	}
}

func TestConcurrencyQueue(t *testing.T) {
	rec := &eventRecorder{}
	e := newEnv(t, withEvents(rec))
	e.limit(1, "queue")
	first, second, third := e.submit(), e.submit(), e.submit()
	e.wantStatus(first, ledger.Accepted)
	e.wantStatus(second, ledger.Queued)
	e.wantStatus(third, ledger.Queued)
	if n := len(e.tasks(second)) + len(e.tasks(third)); n != 0 {
		t.Fatalf("%d tasks for waiting runs", n)
	}
	q := e.only(third, protocol.TypeQueued).Queued
	if q.Position != 2 || q.Holder != first || q.Concurrency != 1 || q.Group != "job:website" || !strings.Contains(q.HolderRequester, ":assumed-role/") || q.HolderSince.IsZero() {
		t.Errorf("queued record %+v, want position 2 behind %s", q, first)
	}
	if got := states(rec.of(second)); got != "requested,queued" {
		t.Errorf("events of the waiting run: %s", got)
	}
	// The first run ends: the second starts, the third still waits.
	e.stop(first)
	e.wantStatus(second, ledger.Accepted)
	if got := e.types(second); got != "queued,accepted" {
		t.Errorf("records of the second run: %s, want queued,accepted", got)
	}
	e.wantStatus(third, ledger.Queued)
	// A cancelled waiting run is answered at once and never starts.
	if err := e.short(protocol.KindCancel, third); err != nil {
		t.Fatal(err)
	}
	if got := e.types(third); got != "queued,rejected" {
		t.Errorf("records of the cancelled waiting run: %s", got)
	}
	e.wantStatus(third, ledger.Rejected)
	e.stop(second)
	if n := len(e.tasks(third)); n != 0 {
		t.Errorf("the cancelled run got %d tasks", n)
	}
	// The slot is free again: the next run starts at once.
	e.wantStatus(e.submit(), ledger.Accepted)
}

func TestConcurrencyReject(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "reject")
	first, second := e.submit(), e.submit()
	e.wantStatus(first, ledger.Accepted)
	rej := e.only(second, protocol.TypeRejected).Rejected
	if rej.Code != protocol.RejectBusy || !strings.Contains(rej.Reason, first) || !strings.Contains(rej.Reason, "requested by arn:aws:sts::") || !strings.Contains(rej.Reason, "since") {
		t.Errorf("rejection %+v, want %s naming run %s, its requester and start", rej, protocol.RejectBusy, first)
	}
	e.stop(first)
	e.wantStatus(e.submit(), ledger.Accepted)
}

func TestConcurrencySupersede(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "supersede")
	first, second, third := e.submit(), e.submit(), e.submit()
	e.wantStatus(first, ledger.Accepted) // never touched
	if rej := e.records(second); len(rej) != 2 || rej[1].Rejected == nil || rej[1].Rejected.Code != protocol.RejectSuperseded {
		t.Errorf("records of the superseded run: %+v", rej)
	}
	e.wantStatus(third, ledger.Queued)
	e.stop(first)
	e.wantStatus(third, ledger.Accepted)
	if n := len(e.tasks(second)); n != 0 {
		t.Errorf("the superseded run got %d tasks", n)
	}
}

// A run whose STOPPED event is lost holds its slot only until it certainly
// cannot run any more; a waiting run whose request expires is refused by
// the sweep rather than left waiting.
func TestConcurrencySlotsNeverLeak(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "queue")
	first, second := e.submit(), e.submit()
	e.wantStatus(second, ledger.Queued)
	e.clock.Add(8 * time.Minute) // past the second request's expiry (5 min) + skew (2 min)
	if err := e.invoke(e.event("scheduled-sweep.json", nil)); err != nil {
		t.Fatal(err)
	}
	if got := e.types(second); got != "queued,rejected" {
		t.Errorf("records of the expired waiting run: %s", got)
	}
	if it := e.item(second); it.RejectCode != protocol.RejectExpired {
		t.Errorf("reject code %q, want expired", it.RejectCode)
	}
	e.wantStatus(first, ledger.Accepted)
	// No STOPPED event ever comes for the first run. Past its deadline
	// (timeout 10m + grace + max request age + skew + margin) its slot is free.
	e.clock.Add(30 * time.Minute)
	e.wantStatus(e.submit(), ledger.Accepted)
}

// A waiting run whose trigger released its queue (it stopped watching)
// never starts.
func TestReleasedWaitingRunNeverStarts(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "queue")
	first, second := e.submit(), e.submit()
	e.wantStatus(second, ledger.Queued)
	if err := e.short(protocol.KindRelease, second); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(second, ledger.Rejected)
	e.stop(first)
	if n := len(e.tasks(second)); n != 0 {
		t.Errorf("the released waiting run got %d tasks", n)
	}
	e.wantStatus(e.submit(), ledger.Accepted)
}

// lostAnswerDynamo passes calls on to moto, except that the first
// UpdateItem matching lose is carried out and its answer lost: the call is
// made again, as the SDK retries a dropped connection, and the caller sees
// only the repeat's answer (a conditional check that fails on its own
// first write).
type lostAnswerDynamo struct {
	dispatcher.DynamoAPI
	lose    func(*dynamodb.UpdateItemInput) bool
	losePut func(*dynamodb.PutItemInput) bool // the same for PutItem
	lost    atomic.Int64
}

func (f *lostAnswerDynamo) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if f.losePut != nil && f.losePut(in) && f.lost.Add(1) == 1 {
		if _, err := f.DynamoAPI.PutItem(ctx, in, o...); err != nil {
			return nil, err
		}
	}
	return f.DynamoAPI.PutItem(ctx, in, o...)
}

func (f *lostAnswerDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.lose != nil && f.lose(in) && f.lost.Add(1) == 1 {
		if _, err := f.DynamoAPI.UpdateItem(ctx, in, o...); err != nil {
			return nil, err
		}
	}
	return f.DynamoAPI.UpdateItem(ctx, in, o...)
}

func withLostUpdate(lose func(*dynamodb.UpdateItemInput) bool) (envOption, *lostAnswerDynamo) {
	f := &lostAnswerDynamo{lose: lose}
	return func(_ *dispatcher.Settings, c *dispatcher.Clients) { f.DynamoAPI = c.Dynamo; c.Dynamo = f }, f
}

// conditionedOn reports whether an UpdateItem is conditioned on one of the
// given values (the ledger's status conditions name the status they expect).
func conditionedOn(in *dynamodb.UpdateItemInput, status ledger.Status) bool {
	if in.ConditionExpression == nil || !strings.Contains(*in.ConditionExpression, " = :") {
		return false
	}
	for k, v := range in.ExpressionAttributeValues {
		if s, ok := v.(*dbtypes.AttributeValueMemberS); ok && s.Value == string(status) && strings.HasPrefix(k, ":c") {
			return true
		}
	}
	return false
}

// When the answer to the update that moves a promoted run from queued to
// launching is lost, the repeat fails its condition on that very write. The
// run must still start now: before the fix it sat in "launching" under a
// lease nobody worked on until the lease ran out and a sweep came (65 s and
// more; TestConcurrencyOneUnderFaults timed out on it once in CI).
func TestPromotionWhoseAnswerIsLostStillStarts(t *testing.T) {
	opt, f := withLostUpdate(func(in *dynamodb.UpdateItemInput) bool { return conditionedOn(in, ledger.Queued) })
	e := newEnv(t, opt)
	e.limit(1, "queue")
	first, second := e.submit(), e.submit()
	e.wantStatus(second, ledger.Queued)
	e.stop(first)
	if f.lost.Load() == 0 {
		t.Fatal("no update conditioned on status queued was made: the test no longer exercises the promotion")
	}
	e.wantStatus(second, ledger.Accepted)
	if n := len(e.tasks(second)); n != 1 {
		t.Errorf("the promoted run has %d tasks, want 1", n)
	}
}

// The same for a take-over of an interrupted launch: the delivery whose
// take-over answer was lost must go on with the launch, not wait for a
// lease that is its own.
func TestTakeOverWhoseAnswerIsLostGoesOn(t *testing.T) {
	opt, f := withLostUpdate(func(in *dynamodb.UpdateItemInput) bool {
		return in.ConditionExpression != nil && strings.Contains(*in.ConditionExpression, ":seen")
	})
	e := newEnv(t, opt)
	r := e.request()
	if err := e.invoke(e.sns(e.claim(r, e.clock.Now().Add(-time.Second)))); err != nil {
		t.Fatal(err)
	}
	if f.lost.Load() == 0 {
		t.Fatal("no take-over was made: the test no longer exercises it")
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
}

// And for the end of a waiting run: a cancelled run whose rejection's
// answer was lost is still answered on its queue, so its trigger ends.
func TestCancelOfAWaitingRunWhoseAnswerIsLostIsAnswered(t *testing.T) {
	opt, f := withLostUpdate(func(in *dynamodb.UpdateItemInput) bool { return conditionedOn(in, ledger.Queued) })
	e := newEnv(t, opt)
	e.limit(1, "queue")
	_, second := e.submit(), e.submit()
	e.wantStatus(second, ledger.Queued)
	if err := e.short(protocol.KindCancel, second); err != nil {
		t.Fatal(err)
	}
	if f.lost.Load() == 0 {
		t.Fatal("no update conditioned on status queued was made: the test no longer exercises the cancel")
	}
	if got := e.types(second); got != "queued,rejected" {
		t.Errorf("records of the cancelled waiting run: %s, want queued,rejected", got)
	}
}

// The same for the concurrency slots item: when the answer to the write
// that superseded a waiting run is lost, the repeat fails its version
// condition on that very write. The superseded run must still be answered
// at once (before the fix it was forgotten, and refused "expired" by a
// sweep minutes later).
func TestSupersedeWhoseAnswerIsLostStillAnswersTheOlderRun(t *testing.T) {
	var armed atomic.Bool
	opt, f := withLostUpdate(nil)
	f.losePut = func(in *dynamodb.PutItemInput) bool {
		key, _ := in.Item[ledger.AttrRunID].(*dbtypes.AttributeValueMemberS)
		return armed.Load() && key != nil && strings.HasPrefix(key.Value, ledger.SlotKeyPrefix)
	}
	e := newEnv(t, opt)
	e.limit(1, "supersede")
	first, second := e.submit(), e.submit()
	e.wantStatus(second, ledger.Queued)
	armed.Store(true)
	third := e.submit()
	if f.lost.Load() == 0 {
		t.Fatal("no slots write was made: the test no longer exercises the supersede")
	}
	if got := e.types(second); got != "queued,rejected" {
		t.Errorf("records of the superseded run: %s, want queued,rejected", got)
	}
	e.wantStatus(third, ledger.Queued)
	e.wantStatus(first, ledger.Accepted)
}

// A waiting run whose cancel was recorded in the ledger but whose answer
// could not be sent (SQS down past the retries) is answered by the next
// sweep, not first when it is abandoned.
func TestSweepAnswersAWaitingRunWhoseRejectionWasNotSent(t *testing.T) {
	f := &flakySQS{action: "SendMessage"}
	e := newEnv(t, func(_ *dispatcher.Settings, c *dispatcher.Clients) { f.SQSAPI = c.SQS; c.SQS = f })
	e.limit(1, "queue")
	_, second := e.submit(), e.submit()
	e.wantStatus(second, ledger.Queued)
	f.left.Store(100)
	if err := e.short(protocol.KindCancel, second); err == nil {
		t.Fatal("the cancel succeeded although its answer could not be sent")
	}
	f.left.Store(0)
	e.wantStatus(second, ledger.Rejected)
	if got := e.types(second); got != "queued" {
		t.Fatalf("records before the sweep: %s", got)
	}
	if err := e.invoke(e.event("scheduled-sweep.json", nil)); err != nil {
		t.Fatal(err)
	}
	if got := e.types(second); got != "queued,rejected" {
		t.Errorf("records after the sweep: %s, want queued,rejected", got)
	}
}
