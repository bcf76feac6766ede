package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

var benchNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func now() time.Time { return benchNow }

func validRequest(t testing.TB) []byte {
	return body(t, &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(benchNow), Job: "migrate",
		Params:      map[string]string{"steps": "3", "token": "abc123", "dry_run": "true"},
		RequestedAt: benchNow, ExpiresAt: benchNow.Add(5 * time.Minute),
		Requester: &protocol.Requester{CI: "github-actions", Repository: "org/app", Ref: "refs/heads/main",
			SHA: "0123456789abcdef0123456789abcdef01234567", Actor: "alice", RunURL: "https://github.com/org/app/actions/runs/1"}})
}

// offline is an AWS that always fails at once.
type offline struct{}

var errOffline = errors.New("offline")

func (offline) CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	return nil, errOffline
}
func (offline) GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return nil, errOffline
}
func (offline) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return nil, errOffline
}
func (offline) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return nil, errOffline
}
func (offline) DeleteQueue(context.Context, *sqs.DeleteQueueInput, ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error) {
	return nil, errOffline
}
func (offline) ListQueues(context.Context, *sqs.ListQueuesInput, ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error) {
	return nil, errOffline
}
func (offline) RunTask(context.Context, *ecs.RunTaskInput, ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	return nil, errOffline
}
func (offline) StopTask(context.Context, *ecs.StopTaskInput, ...func(*ecs.Options)) (*ecs.StopTaskOutput, error) {
	return nil, errOffline
}
func (offline) ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	return nil, errOffline
}
func (offline) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, errOffline
}
func (offline) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, errOffline
}
func (offline) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errOffline
}

func offlineDispatcher(t testing.TB) *dispatcher.Dispatcher {
	cfg := testCatalogue(t, "bench")
	d := dispatcher.New(cfg, dispatcher.Settings{Cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/bench", LedgerTable: "bench-runs",
		Subnets: []string{"subnet-1"}, SecurityGroups: []string{"sg-1"}, AccountID: "123456789012", Region: "us-east-1",
		TaskDefinitions: map[string]string{"website": "3", "migrate": "7"},
		STSEndpoint:     "http://127.0.0.1:1/"}, // never the real STS, whatever the fuzzer makes
		dispatcher.Clients{SQS: offline{}, ECS: offline{}, Dynamo: offline{}}, slog.New(slog.NewJSONHandler(io.Discard, nil)),
		dispatcher.WithClock(now))
	d.SetWaits(time.Millisecond, 0, time.Millisecond, time.Millisecond)
	return d
}

// BenchmarkDecide measures the handler's own work on a run request, without
// AWS calls: strict decoding, expiry and replay checks, catalogue and
// parameter validation, argv rendering and the RunTask input.
func BenchmarkDecide(b *testing.B) {
	d := offlineDispatcher(b)
	req := validRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if code, err := d.Decide(req, benchNow); err != nil || code != "" {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkDecideRejected measures a request refused for a bad parameter.
func BenchmarkDecideRejected(b *testing.B) {
	d := offlineDispatcher(b)
	var r protocol.Request
	_ = json.Unmarshal(validRequest(b), &r)
	r.Params["steps"] = "99"
	req := body(b, &r)
	b.ReportAllocs()
	for b.Loop() {
		if code, err := d.Decide(req, benchNow); err != nil || code != protocol.RejectBadParams {
			b.Fatal(code, err)
		}
	}
}

// FuzzHandle feeds arbitrary bytes to the router: whatever arrives, the
// handler must not panic. AWS is "offline", so every path that gets as far
// as a call fails fast.
func FuzzHandle(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	data := map[string]any{"Account": "123456789012", "Region": "us-east-1", "ClusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/bench",
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:bench", "Time": benchNow.Format(time.RFC3339), "EventID": "e1", "MessageID": "m1",
		"Family": "bench-website", "Version": 7, "TaskArn": "arn:aws:ecs:us-east-1:123456789012:task/bench/abc", "StartedBy": protocol.NewRunID(benchNow)}
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		msg, _ := json.Marshal(string(validRequest(f)))
		data["Message"] = string(msg)
		var b bytes.Buffer
		if template.Must(template.New("").Parse(string(raw))).Execute(&b, data) == nil {
			f.Add(b.Bytes())
		}
	}
	for _, s := range []string{`{}`, `[]`, `null`, `{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"{}"}}]}`,
		`{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":{"startedBy":"01JD0000000000000000000000","clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/bench"}}`,
		`{"source":"aws.events","detail-type":"Scheduled Event"}`} {
		f.Add([]byte(s))
	}
	d := offlineDispatcher(f)
	f.Fuzz(func(t *testing.T, event []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Handle(ctx, event)
	})
}
