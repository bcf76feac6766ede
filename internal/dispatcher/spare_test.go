package dispatcher_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Spare run queues (spare.go, issue 26). These tests go through moto on
// loopback: moto evaluates DynamoDB's condition expressions itself (the
// atomic take is moto's, as it is DynamoDB's in AWS) but evaluates no IAM
// policy, so who may read a queue is proven here by the policy stored on
// it, which the IAM evaluation (infra/internal/iamcheck) evaluates.

// sqsOps is an SQS client on moto that notes the operation of every call
// the dispatcher makes, in order.
type sqsOps struct {
	mu  sync.Mutex
	ops []string
}

func (r *sqsOps) option() envOption {
	return func(_ *dispatcher.Settings, c *dispatcher.Clients) {
		c.SQS = sqs.NewFromConfig(motoCfg, func(o *sqs.Options) {
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				return st.Initialize.Add(middleware.InitializeMiddlewareFunc("noteOperation",
					func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
						r.mu.Lock()
						r.ops = append(r.ops, awsmiddleware.GetOperationName(ctx))
						r.mu.Unlock()
						return next.HandleInitialize(ctx, in)
					}), middleware.After)
			})
		})
	}
}

// take returns the operations noted since the last take.
func (r *sqsOps) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ops
	r.ops = nil
	return out
}

// beforeFirst is ops up to the first of op.
func beforeFirst(ops []string, op string) []string {
	for i, o := range ops {
		if o == op {
			return ops[:i]
		}
	}
	return ops
}

// spares lists the broker's spares, access key → queue URL, from the ledger.
func (e *env) spares() map[string]string {
	e.t.Helper()
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.res.LedgerTable)})
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range out.Items {
		k, _ := it[ledger.AttrRunID].(*dbtypes.AttributeValueMemberS)
		u, _ := it[ledger.AttrQueueURL].(*dbtypes.AttributeValueMemberS)
		if k != nil && u != nil && strings.HasPrefix(k.Value, ledger.SparePrefix) {
			got[k.Value] = u.Value
		}
	}
	return got
}

// policyOf is the policy stored on a queue.
func (e *env) policyOf(url string) string {
	e.t.Helper()
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
	if err != nil {
		e.t.Fatal(err)
	}
	return out.Attributes["Policy"]
}

// wantPolicy is the policy QueuePolicy writes for a run of website by p on
// the queue at url.
func (e *env) wantPolicy(url string, p identity.Principal) string {
	e.t.Helper()
	name := url[strings.LastIndex(url, "/")+1:]
	doc, err := dispatcher.QueuePolicy(dispatcher.RunQueueAccess{
		QueueARN: "arn:aws:sqs:" + e.res.Region + ":" + e.res.AccountID + ":" + name, Requester: p,
		BrokerRoles: "arn:aws:iam::" + e.res.AccountID + ":role/deploy-broker/" + e.name + "/*"})
	if err != nil {
		e.t.Fatal(err)
	}
	return doc
}

// principal is the verified principal of a session ARN.
func (e *env) principal(arn string) identity.Principal {
	e.t.Helper()
	p, err := identity.PrincipalFromARN(arn)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func samePolicy(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if json.Unmarshal([]byte(got), &g) != nil || json.Unmarshal([]byte(want), &w) != nil {
		return false
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}

func TestSecondRunOfARequesterCreatesNoQueueBeforeItIsAccepted(t *testing.T) {
	rec := &sqsOps{}
	e := newEnv(t, rec.option())
	first := e.request()
	if err := e.run(first); err != nil {
		t.Fatal(err)
	}
	ops := rec.take()
	if n := strings.Count(strings.Join(beforeFirst(ops, "SendMessage"), " "), "CreateQueue"); n != 1 {
		t.Fatalf("first run's SQS calls %v: want its own CreateQueue before the accepted record (no spare yet)", ops)
	}
	if n := strings.Count(strings.Join(ops, " "), "CreateQueue"); n != 2 {
		t.Fatalf("first run's SQS calls %v: want a spare made after the accepted record", ops)
	}
	if len(e.spares()) != 1 {
		t.Fatalf("spares after the first run: %v, want one", e.spares())
	}

	second := e.request()
	if err := e.run(second); err != nil {
		t.Fatal(err)
	}
	ops = rec.take()
	for _, op := range beforeFirst(ops, "SendMessage") {
		if op == "CreateQueue" || op == "SetQueueAttributes" {
			t.Fatalf("second run's SQS calls %v: %s before the accepted record", ops, op)
		}
	}
	if e.only(second.RunID, protocol.TypeAccepted).Accepted == nil {
		t.Fatal("second run has no accepted record")
	}
	url, _ := e.queueURL(second.RunID)
	if strings.HasSuffix(url, second.RunID+".fifo") {
		t.Errorf("second run's queue %s is named after the run: it was not the spare", url)
	}
	if got := e.item(second.RunID).QueueURL; got != url {
		t.Errorf("ledger queue_url %q, run pointer %q", got, url)
	}
	if !samePolicy(t, e.policyOf(url), e.wantPolicy(url, e.principal(e.id.ARN))) {
		t.Errorf("the spare's policy is not QueuePolicy's for the requester:\n%s", e.policyOf(url))
	}
	if strings.Count(strings.Join(ops, " "), "CreateQueue") != 1 || len(e.spares()) != 1 {
		t.Errorf("second run's SQS calls %v, spares %v: want the next spare made after the accepted record", ops, e.spares())
	}
}

func TestConcurrentRunsNeverShareAQueue(t *testing.T) {
	e := newEnv(t)
	if err := e.run(e.request()); err != nil { // makes the requester's spare
		t.Fatal(err)
	}
	var spare string
	for _, u := range e.spares() {
		spare = u
	}
	if spare == "" {
		t.Fatal("no spare after the first run")
	}
	runs := []*protocol.Request{e.request(), e.request(), e.request()}
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, r := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = e.run(r) }()
	}
	wg.Wait()
	seen := map[string]string{}
	took := 0
	for i, r := range runs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		url, ok := e.queueURL(r.RunID)
		if !ok {
			t.Fatalf("run %s has no queue", r.RunID)
		}
		if other, dup := seen[url]; dup {
			t.Fatalf("runs %s and %s share queue %s", other, r.RunID, url)
		}
		seen[url] = r.RunID
		if url == spare {
			took++
		}
		if e.only(r.RunID, protocol.TypeAccepted).Accepted == nil {
			t.Errorf("run %s was not accepted", r.RunID)
		}
	}
	if took != 1 {
		t.Errorf("%d of the concurrent runs got the spare %s, want exactly one", took, spare)
	}
}

func TestASpareIsNeverAnotherRequestersQueue(t *testing.T) {
	e := newEnv(t)
	if err := e.run(e.request()); err != nil { // the deployer's spare
		t.Fatal(err)
	}
	spares := e.spares()
	if len(spares) != 1 {
		t.Fatalf("spares %v, want the deployer's", spares)
	}
	var deployerSpare string
	for _, u := range spares {
		deployerSpare = u
	}
	jenkins := e.assume(jenkinsRole, "build-7")
	r := e.request()
	if err := e.runAs(jenkins, r); err != nil {
		t.Fatal(err)
	}
	url, ok := e.queueURL(r.RunID)
	if !ok || url == deployerSpare {
		t.Fatalf("jenkins' run got queue %q (ok %v), the deployer's spare is %s", url, ok, deployerSpare)
	}
	if !samePolicy(t, e.policyOf(url), e.wantPolicy(url, e.principal(jenkins.ARN))) {
		t.Errorf("jenkins' queue policy is not QueuePolicy's for jenkins:\n%s", e.policyOf(url))
	}
	// The deployer's spare is still there, still the deployer's alone: the
	// stored policy admits the deployer's role and denies every other
	// principal (jenkins' role included) what a requester does.
	after := e.spares()
	if len(after) != 2 {
		t.Fatalf("spares after jenkins' run %v, want the deployer's and jenkins' own", after)
	}
	found := false
	for _, u := range after {
		found = found || u == deployerSpare
	}
	if !found {
		t.Fatalf("the deployer's spare %s was taken by jenkins' run", deployerSpare)
	}
	pol := e.policyOf(deployerSpare)
	if !samePolicy(t, pol, e.wantPolicy(deployerSpare, e.principal(e.id.ARN))) || strings.Contains(pol, "jenkins-deployer") {
		t.Errorf("the deployer's spare's policy:\n%s", pol)
	}
}

func TestSweepKeepsATakenSpareAndDeletesAnIdleOne(t *testing.T) {
	e := newEnv(t)
	if err := e.run(e.request()); err != nil { // makes a spare now
		t.Fatal(err)
	}
	var spare string
	for _, u := range e.spares() {
		spare = u
	}
	// Six days later a run takes it: the spare's id is six days old, older
	// than any run may last, but the queue is the run's now.
	e.clock.Add(6 * 24 * time.Hour)
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if url, _ := e.queueURL(r.RunID); url != spare {
		t.Fatalf("run got %s, want the six-day-old spare %s", url, spare)
	}
	var next string
	for _, u := range e.spares() {
		next = u
	}
	sweep := e.event("scheduled-sweep.json", nil)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(r.RunID); !ok {
		t.Fatal("the sweep deleted the queue a running run took from the spares")
	}
	// The next spare, never taken, goes once idle longer than SpareMaxIdle.
	e.clock.Add(dispatcher.SpareMaxIdle - time.Hour)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if !e.queueExists(next) {
		t.Fatal("a spare idle less than SpareMaxIdle was swept")
	}
	e.clock.Add(2 * time.Hour)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if e.queueExists(next) {
		t.Error("a spare idle longer than SpareMaxIdle survived the sweep")
	}
	if len(e.spares()) != 0 {
		t.Errorf("the swept spare is still offered: %v", e.spares())
	}
}

// queueExists reports whether the queue at url exists.
func (e *env) queueExists(url string) bool {
	_, err := e.sqs.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(url[strings.LastIndex(url, "/")+1:])})
	return err == nil
}

func TestAWaitingRunKeepsItsQueueAndASpareGoesBack(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "queue")
	first := e.submit() // accepted; leaves a spare
	second := e.submit()
	e.wantStatus(second, ledger.Queued)
	waitedOn, _ := e.queueURL(second) // the spare the first run left: the queued record is on it
	if len(e.spares()) != 0 {
		t.Fatalf("spares %v while the second run waits, want none (it took the only one)", e.spares())
	}
	// Another spare appears while the run waits (another of the
	// requester's runs was accepted meanwhile).
	e.d.Replenish(context.Background(), "website", e.id.ARN)
	var spare string
	for _, u := range e.spares() {
		spare = u
	}
	e.stop(first) // the second run starts, on the queue it waited on
	e.wantStatus(second, ledger.Accepted)
	if got := e.types(second); got != "queued,accepted" {
		t.Errorf("records of the second run: %s, want queued,accepted on the queue it waited on", got)
	}
	if url, _ := e.queueURL(second); url != waitedOn || e.item(second).QueueURL != waitedOn {
		t.Errorf("the second run's pointer %s and ledger %s, want the queue it waited on %s", url, e.item(second).QueueURL, waitedOn)
	}
	// The spare it took on starting went back: the requester has that one
	// still (no queue made for nothing), never the second run's own queue.
	after := e.spares()
	if len(after) != 1 {
		t.Fatalf("spares after the second run started: %v, want one", after)
	}
	for _, u := range after {
		if u != spare {
			t.Errorf("the requester's spare is %s, want %s given back (the run's own: %s)", u, spare, waitedOn)
		}
	}
}

// A queue someone created under a run's name before the dispatcher did
// (the name follows from the run id, which deploy-trigger prints when it
// publishes) is never the run's queue: its attributes differ from the
// run's, so the run gets a queue under a fresh name with the run's policy,
// and the pre-created queue receives nothing. Before, the dispatcher used
// such a queue as it was, whatever its policy. (moto, like SQS, refuses
// CreateQueue of an existing name with other attributes; that refusal is
// what the dispatcher acts on. The job guard also denies jobs CreateQueue
// on the broker's queue names: infra, the IAM evaluation.)
func TestAQueuePreCreatedUnderTheRunsNameIsNotUsed(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	name := protocol.QueueName(e.name, r.RunID)
	pre, err := e.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	url, ok := e.queueURL(r.RunID)
	if !ok || url == aws.ToString(pre.QueueUrl) {
		t.Fatalf("the run's queue is %q (ok %v): the queue pre-created under its name", url, ok)
	}
	if !samePolicy(t, e.policyOf(url), e.wantPolicy(url, e.principal(e.id.ARN))) {
		t.Errorf("the run's fresh queue's policy is not the run's:\n%s", e.policyOf(url))
	}
	if recs := e.records(r.RunID); len(recs) == 0 || recs[0].Type != protocol.TypeAccepted {
		t.Errorf("the run's queue holds %v, want accepted first", recs)
	}
	n, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: pre.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]; got != "0" {
		t.Errorf("the pre-created queue received %s messages", got)
	}
}
