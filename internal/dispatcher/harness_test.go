package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// One moto server serves the whole package; each test gets its own broker
// (its own name, so its own cluster, ledger table and queue prefix).
var (
	motoOnce   sync.Once
	motoServer *moto.Server
	motoCfg    aws.Config
	motoErr    error
	brokerSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if motoServer != nil {
		motoServer.Close()
	}
	os.Exit(code)
}

func sharedMoto(t testing.TB) aws.Config {
	t.Helper()
	motoOnce.Do(func() {
		motoServer, motoErr = moto.Start(context.Background(), nil)
		if motoErr == nil {
			motoCfg, motoErr = motoServer.AWSConfig(context.Background())
		}
	})
	if motoErr != nil {
		t.Fatal(motoErr)
	}
	return motoCfg
}

// fakeClock is the dispatcher's clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// testCatalogue parses testdata/broker.yaml for a broker called name.
func testCatalogue(t testing.TB, name string) *config.Config {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "broker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(string(raw))).Execute(&b, map[string]string{"Name": name}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// env is one test's broker in the shared emulator.
type env struct {
	t     *testing.T
	name  string
	cfg   *config.Config
	res   *localbroker.Resources
	clock *fakeClock
	logs  *testutil.SyncBuffer
	d     *dispatcher.Dispatcher
	h     lambda.Handler
	sqs   *sqs.Client
	ecs   *ecs.Client
	db    *dynamodb.Client
	set   dispatcher.Settings
	// id signs the requests the test sends (e.body): an assumed session of
	// a trusted role, made in moto (distinct principals: e.assume).
	id     prooftest.Identity
	awsCfg aws.Config
}

// The default requester: a session of a role the test catalogue trusts.
const (
	deployerRole = "arn:aws:iam::111111111111:role/github-deployer"
	jenkinsRole  = "arn:aws:iam::111111111111:role/jenkins-deployer"
)

// assume makes a distinct principal: a session of roleARN in moto.
func (e *env) assume(roleARN, session string) prooftest.Identity {
	e.t.Helper()
	return prooftest.MustAssume(e.t, e.awsCfg, roleARN, session)
}

type envOption func(*dispatcher.Settings, *dispatcher.Clients)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	awsCfg := sharedMoto(t)
	name := fmt.Sprintf("b%d", brokerSeq.Add(1))
	cfg := testCatalogue(t, name)
	ctx := context.Background()
	res, err := localbroker.Provision(ctx, awsCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, name: name, cfg: cfg, res: res, logs: &testutil.SyncBuffer{},
		clock: &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)},
		sqs:   sqs.NewFromConfig(awsCfg), ecs: ecs.NewFromConfig(awsCfg), db: dynamodb.NewFromConfig(awsCfg)}
	e.set = dispatcher.Settings{Cluster: res.ClusterARN, LedgerTable: res.LedgerTable, Subnets: res.Subnets[:1],
		SecurityGroups: res.SecurityGroups, AccountID: res.AccountID, Region: res.Region,
		ExtraPrincipals: []string{"arn:aws:iam::111111111111:role/extra-reader"}, TaskDefinitions: res.TaskDefinitions, STSEndpoint: motoServer.URL}
	e.awsCfg = awsCfg
	e.id = e.assume(deployerRole, "gha-org-app-1")
	clients := dispatcher.Clients{SQS: e.sqs, ECS: e.ecs, Dynamo: e.db}
	for _, o := range opts {
		o(&e.set, &clients)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.d = dispatcher.New(cfg, e.set, clients, log, dispatcher.WithClock(e.clock.Now))
	e.d.SetWaits(50*time.Millisecond, 100*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond)
	e.h = lambda.NewHandler(e.d.Handle)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dispatcher log:\n%s", e.logs.String())
		}
	})
	return e
}

// invoke feeds one event through the Lambda handler, as Lambda does.
func (e *env) invoke(payload []byte) error {
	return e.invokeCtx(context.Background(), payload)
}

func (e *env) invokeCtx(ctx context.Context, payload []byte) error {
	_, err := e.h.Invoke(ctx, payload)
	return err
}

// event renders a testdata event template.
func (e *env) event(file string, data map[string]any) []byte {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		e.t.Fatal(err)
	}
	full := map[string]any{
		"Account": e.res.AccountID, "Region": e.res.Region, "ClusterArn": e.res.ClusterARN,
		"TopicArn": e.res.TopicARN, "Time": e.clock.Now().Format(time.RFC3339), "EventID": fmt.Sprintf("ev-%d", time.Now().UnixNano()),
		"MessageID": fmt.Sprintf("msg-%d", time.Now().UnixNano()), "Family": e.name + "-website", "Version": 1,
	}
	for k, v := range data {
		full[k] = v
	}
	var b bytes.Buffer
	if err := template.Must(template.New(file).Option("missingkey=error").Parse(string(raw))).Execute(&b, full); err != nil {
		e.t.Fatal(err)
	}
	if !json.Valid(b.Bytes()) {
		e.t.Fatalf("%s renders to invalid JSON:\n%s", file, b.String())
	}
	return b.Bytes()
}

// sns wraps a request body in a recorded SNS event.
func (e *env) sns(body []byte) []byte {
	msg, _ := json.Marshal(string(body))
	return e.event("sns-request.json", map[string]any{"Message": string(msg)})
}

// request is a valid run request of job website made now.
func (e *env) request(mutate ...func(*protocol.Request)) *protocol.Request {
	now := e.clock.Now()
	r := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: "website",
		Params: map[string]string{"version": "1.4.2"}, RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute),
		Requester: &protocol.Requester{CI: "github-actions", Repository: "org/app", Ref: "refs/heads/main",
			SHA: "0123456789abcdef0123456789abcdef01234567", Actor: "alice", RunURL: "https://github.com/org/app/actions/runs/1"}}
	for _, m := range mutate {
		m(r)
	}
	return r
}

// body encodes r, signed by e.id at the dispatcher's time unless it
// already carries a proof.
func (e *env) body(r *protocol.Request) []byte {
	e.t.Helper()
	return e.bodyAs(e.id, r)
}

// bodyAs encodes r signed by id (unless it already carries a proof).
func (e *env) bodyAs(id prooftest.Identity, r *protocol.Request) []byte {
	e.t.Helper()
	if len(r.Proof) == 0 {
		// Signed when it was made, as deploy-trigger does.
		if err := prooftest.Sign(r, id, e.res.TopicARN, motoServer.URL, r.RequestedAt); err != nil {
			e.t.Fatal(err)
		}
	}
	return body(e.t, r)
}

func body(t testing.TB, r *protocol.Request) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run publishes a request through a recorded SNS event.
func (e *env) run(r *protocol.Request) error { return e.invoke(e.sns(e.body(r))) }

// runAs publishes a request signed by id.
func (e *env) runAs(id prooftest.Identity, r *protocol.Request) error {
	return e.invoke(e.sns(e.bodyAs(id, r)))
}

// shortAs sends a cancel or release signed by id.
func (e *env) shortAs(id prooftest.Identity, kind protocol.Kind, runID string) error {
	now := e.clock.Now()
	req := &protocol.Request{V: protocol.RequestVersion, Kind: kind, RunID: runID, RequestedAt: now, ExpiresAt: now.Add(time.Minute)}
	if kind == protocol.KindApprove || kind == protocol.KindReject {
		// As deploy-trigger sends them: bound to the run's request as the
		// ledger has it, with a decision id for the answer (approval_test.go).
		req.RequestDigest, req.DecisionID = e.requestDigest(runID), protocol.NewRunID(now)
	}
	return e.invoke(e.sns(e.bodyAs(id, req)))
}

// cancel and release send the short requests.
func (e *env) short(kind protocol.Kind, runID string) error {
	now := e.clock.Now()
	return e.invoke(e.sns(e.body(&protocol.Request{V: protocol.RequestVersion, Kind: kind, RunID: runID, RequestedAt: now, ExpiresAt: now.Add(time.Minute)})))
}

// queueURL finds the run's queue as the trigger does: through the run
// pointer the dispatcher writes in the view table (its queue may be a
// spare, named otherwise), else by the run's name; ok is false when the
// queue does not exist (any more).
func (e *env) queueURL(runID string) (string, bool) {
	name := protocol.QueueName(e.name, runID)
	if url, ok, err := brokerview.GetRunPointer(context.Background(), e.db, e.res.ViewTable, runID); err == nil && ok {
		name = url[strings.LastIndex(url, "/")+1:]
	}
	out, err := e.sqs.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", false
	}
	return aws.ToString(out.QueueUrl), true
}

// records reads every record on the run's queue without consuming it.
func (e *env) records(runID string) []protocol.Record {
	e.t.Helper()
	url, ok := e.queueURL(runID)
	if !ok {
		e.t.Fatalf("run %s has no queue", runID)
	}
	ctx := context.Background()
	// The SDK leaves out zero WaitTimeSeconds and VisibilityTimeout, so an
	// empty queue would long-poll for its 20 s: look at the count first,
	// and make what was read visible again afterwards.
	n, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		e.t.Fatal(err)
	}
	if n.Attributes["ApproximateNumberOfMessages"] == "0" {
		return nil
	}
	out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
		MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range out.Messages {
		if _, err := e.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			e.t.Fatal(err)
		}
	}
	var recs []protocol.Record
	for _, m := range out.Messages {
		if g := m.Attributes["MessageGroupId"]; g != runID {
			e.t.Errorf("message group %q, want the run id", g)
		}
		rs, err := protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
		if err != nil {
			e.t.Fatalf("message on the run queue does not decode: %v", err)
		}
		recs = append(recs, rs...)
	}
	return recs
}

// only asserts the queue holds exactly one record, of type typ.
func (e *env) only(runID string, typ protocol.RecordType) protocol.Record {
	e.t.Helper()
	recs := e.records(runID)
	if len(recs) != 1 || recs[0].Type != typ {
		e.t.Fatalf("run queue holds %d records %+v, want one %s", len(recs), recs, typ)
	}
	return recs[0]
}

// tasks lists the run's tasks, running or stopped.
func (e *env) tasks(runID string) []string {
	e.t.Helper()
	var arns []string
	for _, st := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
		out, err := e.ecs.ListTasks(context.Background(), &ecs.ListTasksInput{Cluster: aws.String(e.res.ClusterARN), StartedBy: aws.String(runID), DesiredStatus: st})
		if err != nil {
			e.t.Fatal(err)
		}
		arns = append(arns, out.TaskArns...)
	}
	return arns
}

func (e *env) describe(arn string) ecstypes.Task {
	e.t.Helper()
	out, err := e.ecs.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: aws.String(e.res.ClusterARN), Tasks: []string{arn}, Include: []ecstypes.TaskField{ecstypes.TaskFieldTags}})
	if err != nil || len(out.Tasks) != 1 {
		e.t.Fatalf("describing task %s: %v %+v", arn, err, out)
	}
	return out.Tasks[0]
}

func (e *env) item(runID string) dispatcher.LedgerItem {
	e.t.Helper()
	it, ok, err := e.d.LedgerGet(context.Background(), runID)
	if err != nil || !ok {
		e.t.Fatalf("ledger item of %s: ok=%v err=%v", runID, ok, err)
	}
	return it
}

// rawItem is the ledger item as DynamoDB holds it, attribute by attribute.
func (e *env) rawItem(runID string) map[string]dbtypes.AttributeValue {
	e.t.Helper()
	out, err := e.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(e.res.LedgerTable),
		Key: map[string]dbtypes.AttributeValue{"run_id": &dbtypes.AttributeValueMemberS{Value: runID}}, ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		e.t.Fatalf("ledger item of %s: %v", runID, err)
	}
	return out.Item
}

// audits returns the audit lines logged so far.
func (e *env) audits() []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["audit"] == "decision" {
			lines = append(lines, m)
		}
	}
	return lines
}

// auditsOf returns the audit lines of one run.
func (e *env) auditsOf(runID string) []map[string]any {
	var out []map[string]any
	for _, a := range e.audits() {
		if a["run_id"] == runID {
			out = append(out, a)
		}
	}
	return out
}

// queueCount counts this broker's queues.
func (e *env) queueCount() int {
	out, err := e.sqs.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String(e.name + "-")})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(out.QueueUrls)
}
