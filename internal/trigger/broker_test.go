package trigger

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// scriptedBroker plays dispatcher and runner by hand against moto: it reads
// the requests the trigger publishes (through an SQS queue subscribed to the
// topic with raw delivery) and writes crafted records to the run queue, so
// tests control exactly what arrives, in what order, how many times.
type scriptedBroker struct {
	t        *testing.T
	srv      *moto.Server
	sqs      *sqs.Client
	topicARN string
	subURL   string
}

func startScripted(t *testing.T, topicName string) *scriptedBroker {
	t.Helper()
	srv, cfg := mototest.Start(t)
	ctx := context.Background()
	sn, sq := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	top, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(topicName)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(topicName + "-requests")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: top.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes["QueueArn"]), Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatal(err)
	}
	return &scriptedBroker{t: t, srv: srv, sqs: sq, topicARN: aws.ToString(top.TopicArn), subURL: aws.ToString(q.QueueUrl)}
}

// env is the environment a trigger needs to talk to this broker.
func (b *scriptedBroker) env(extra ...string) func(string) string {
	m := map[string]string{}
	for _, kv := range append(append(b.srv.Env(moto.Region), "DEPLOY_TRIGGER_TOPIC_ARN="+b.topicARN), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// tryRequest returns the next request, or nil when none comes before ctx ends.
func (b *scriptedBroker) tryRequest(ctx context.Context) *protocol.Request {
	for ctx.Err() == nil {
		out, err := b.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.subURL), MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
		if err != nil || len(out.Messages) == 0 {
			continue
		}
		r, _ := protocol.DecodeRequest([]byte(aws.ToString(out.Messages[0].Body)))
		return r
	}
	return nil
}

// request waits for the next request the trigger publishes.
func (b *scriptedBroker) request(ctx context.Context) *protocol.Request {
	b.t.Helper()
	for ctx.Err() == nil {
		out, err := b.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.subURL), MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.t.Errorf("receiving requests: %v", err)
			return nil
		}
		for _, m := range out.Messages {
			_, _ = b.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(b.subURL), ReceiptHandle: m.ReceiptHandle})
			r, err := protocol.DecodeRequest([]byte(aws.ToString(m.Body)))
			if err != nil {
				b.t.Errorf("trigger published a bad request: %v\n%s", err, aws.ToString(m.Body))
				return nil
			}
			return r
		}
	}
	b.t.Errorf("no request arrived: %v", ctx.Err())
	return nil
}

// queue creates the run's feedback queue as the dispatcher does.
func (b *scriptedBroker) queue(ctx context.Context, runID string) string {
	b.t.Helper()
	name := protocol.QueueName(b.topicARN[strings.LastIndex(b.topicARN, ":")+1:], runID)
	out, err := b.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"}})
	if err != nil {
		b.t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

var dedupCounter struct {
	sync.Mutex
	n int
}

// sendRaw writes one message with body as is.
func (b *scriptedBroker) sendRaw(ctx context.Context, url, runID, body string) {
	b.t.Helper()
	dedupCounter.Lock()
	dedupCounter.n++
	id := fmt.Sprintf("m%d", dedupCounter.n)
	dedupCounter.Unlock()
	if _, err := b.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
		MessageGroupId: aws.String(runID), MessageDeduplicationId: aws.String(id)}); err != nil {
		b.t.Fatal(err)
	}
}

// send writes one message holding recs. Each call is a distinct message
// (its own deduplication id), so a test can deliver the same record twice.
func (b *scriptedBroker) send(ctx context.Context, url, runID string, recs ...protocol.Record) {
	b.t.Helper()
	body, err := protocol.EncodeMessage(recs)
	if err != nil {
		b.t.Fatal(err)
	}
	b.sendRaw(ctx, url, runID, string(body))
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func rec(src protocol.Source, seq uint64) protocol.Record {
	return protocol.Record{Src: src, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second)}
}

func accepted(account string) protocol.Record {
	r := rec(protocol.SourceDispatcher, 1)
	r.Type, r.Accepted = protocol.TypeAccepted, &protocol.Accepted{Job: "website", TaskARN: "arn:aws:ecs:us-east-1:" + account + ":task/broker/abc", Account: account, AccountAlias: "acme-prod", Region: "us-east-1",
		RequestedBy: "arn:aws:sts::111122223333:assumed-role/github-deployer/gha-acme-app-1234"}
	return r
}

func rejected(code, reason string) protocol.Record {
	r := rec(protocol.SourceDispatcher, 1)
	r.Type, r.Rejected = protocol.TypeRejected, &protocol.Rejected{Code: code, Reason: reason}
	return r
}

func task(version uint64, status, stopCode, reason string) protocol.Record {
	r := rec(protocol.SourceECS, version)
	r.Type, r.Task = protocol.TypeTask, &protocol.Task{TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc", Status: status, StopCode: stopCode, StoppedReason: reason}
	return r
}

func started(seq uint64, hb int) protocol.Record {
	r := rec(protocol.SourceRunner, seq)
	r.Type, r.Started = protocol.TypeStarted, &protocol.Started{Job: "website", HeartbeatSeconds: hb}
	return r
}

func output(seq uint64, lines ...protocol.Line) protocol.Record {
	r := rec(protocol.SourceRunner, seq)
	r.Type, r.Output = protocol.TypeOutput, &protocol.Output{Lines: lines}
	return r
}

func out(text string) protocol.Line  { return protocol.Line{Stream: protocol.Stdout, Text: text} }
func errl(text string) protocol.Line { return protocol.Line{Stream: protocol.Stderr, Text: text} }

func exitRec(seq uint64, code int, reason string) protocol.Record {
	r := rec(protocol.SourceRunner, seq)
	r.Type, r.Exit = protocol.TypeExit, &protocol.Exit{Code: code, Reason: reason, DurationMS: 1500, Lines: 3, Bytes: 30}
	return r
}

// triggerRun runs the trigger in the background and returns a channel with
// its error, plus its buffers.
type triggerRun struct {
	done           chan error
	stdout, stderr *testutil.SyncBuffer
	signals        chan os.Signal
}

func startTrigger(ctx context.Context, getenv func(string) string, tune func(*app), args ...string) *triggerRun {
	tr := &triggerRun{done: make(chan error, 1), stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, signals: make(chan os.Signal, 2)}
	a := newApp(getenv, strings.NewReader(""), tr.stdout, tr.stderr, tr.signals)
	a.tick, a.stopGrace, a.exitWait, a.longPoll, a.retry = 50*time.Millisecond, 500*time.Millisecond, 2*time.Second, 1, 100*time.Millisecond
	if tune != nil {
		tune(a)
	}
	go func() { tr.done <- a.main(ctx, args) }()
	return tr
}

func (tr *triggerRun) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-tr.done:
		return err
	case <-time.After(limit):
		t.Fatalf("trigger still running after %s\nstdout:\n%s\nstderr:\n%s", limit, tr.stdout, tr.stderr)
	}
	return nil
}
