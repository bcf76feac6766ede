package localbroker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// startDelayBroker starts the example's broker with a modelled task start
// of delay; its runner is /bin/true (the job's command is never run).
func startDelayBroker(t *testing.T, delay time.Duration) (*Broker, *ledger.Store, aws.Config) {
	t.Helper()
	ctx := context.Background()
	b, err := Start(ctx, Options{ConfigPath: "../../examples/broker.yaml", RunnerPath: "/bin/true", SweepInterval: -1, TaskStartDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if b.Identity == nil {
		t.Fatal("no local identity to sign requests with")
	}
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b, ledger.New(dynamodb.NewFromConfig(awsCfg), b.Resources.LedgerTable, time.Hour), awsCfg
}

// publishRun publishes a signed run request of the example's website job,
// as deploy-trigger does, and returns its run id.
func publishRun(t *testing.T, b *Broker, awsCfg aws.Config) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	req := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: "website",
		Params: map[string]string{"version": "1.4.2"}, RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute),
		Requester: &protocol.Requester{CI: "local"}}
	if err := (identity.RequestSigner{Credentials: credentials.StaticCredentialsProvider{Value: b.Identity.Creds},
		Topic: b.TopicARN(), Endpoint: b.shim.URL}).Sign(ctx, req); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sns.NewFromConfig(awsCfg).Publish(ctx, &sns.PublishInput{TopicArn: aws.String(b.TopicARN()), Message: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	return req.RunID
}

// awaitItem polls the run's ledger item until done says it is as wanted
// (polling for a state, not ordering: the deadline only bounds a failure).
func awaitItem(t *testing.T, l *ledger.Store, runID, what string, done func(ledger.Item) bool) ledger.Item {
	t.Helper()
	var it ledger.Item
	for deadline := time.Now().Add(60 * time.Second); ; {
		got, ok, err := l.Get(context.Background(), runID)
		if err != nil {
			t.Fatal(err)
		}
		if it = got; ok && done(it) {
			return it
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %s did not happen within 60s; the ledger item: %+v", runID, what, it)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A run's ledger item gets its task's start times from the agent's ECS task
// events (PROVISIONING, PENDING, RUNNING, as ECS sends them), through the
// real dispatcher handler and moto's DynamoDB: each time present, in the
// order of a start.
func TestLedgerGetsTheTaskStartFromTheAgentsEvents(t *testing.T) {
	b, l, awsCfg := startDelayBroker(t, 300*time.Millisecond)
	id := publishRun(t, b, awsCfg)
	it := awaitItem(t, l, id, "the run's end", func(it ledger.Item) bool { return it.Status == ledger.Stopped })
	ts := it.TaskStart
	if ts.Created.IsZero() || ts.PullStarted.IsZero() || ts.PullStopped.IsZero() || ts.Started.IsZero() {
		t.Fatalf("the ledger's task start lacks a time: %+v", ts)
	}
	if ts.PullStarted.Before(ts.Created) || ts.PullStopped.Before(ts.PullStarted) || ts.Started.Before(ts.PullStopped) {
		t.Errorf("the task start's times are out of order: %+v", ts)
	}
	if it.ExitCode == nil || *it.ExitCode != 0 {
		t.Errorf("the run (runner /bin/true) ended with exit code %v, want 0", it.ExitCode)
	}
}

// The modelled start does not hold up RunTask: with a start of ten minutes
// the run is accepted with its task and the task's creation recorded (the
// PROVISIONING event) while the task is still starting; and StopTask during
// the start stops the task as ECS does (UserInitiated), without a runner.
// No timing is asserted: ten minutes is beyond every deadline of the test.
func TestStopTaskDuringTheModelledStart(t *testing.T) {
	b, l, awsCfg := startDelayBroker(t, 10*time.Minute)
	id := publishRun(t, b, awsCfg)
	it := awaitItem(t, l, id, "acceptance with the task's creation", func(it ledger.Item) bool {
		return it.Status == ledger.Accepted && it.TaskARN != "" && !it.TaskStart.Created.IsZero()
	})
	if !it.TaskStart.Started.IsZero() {
		t.Fatalf("the task is started already: %+v", it.TaskStart)
	}
	if _, err := ecs.NewFromConfig(awsCfg).StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String(b.Resources.ClusterARN),
		Task: aws.String(it.TaskARN), Reason: aws.String("stopped by the test")}); err != nil {
		t.Fatal(err)
	}
	it = awaitItem(t, l, id, "the task's stop", func(it ledger.Item) bool { return it.Status == ledger.Stopped })
	if it.StopCode != "UserInitiated" || it.StopReason != "stopped by the test" || it.ExitCode != nil || !it.TaskStart.Started.IsZero() {
		t.Errorf("the stop during the start: code %q, reason %q, exit code %v, started %v; want UserInitiated, the StopTask reason, none, never",
			it.StopCode, it.StopReason, it.ExitCode, it.TaskStart.Started)
	}
	if _, running := b.RunnerPID(id); running {
		t.Error("a runner runs for the stopped task")
	}
}

// A task start delay out of range is a usage error that says what to give,
// before anything starts.
func TestTaskStartDelayFlagRange(t *testing.T) {
	for _, v := range []string{"-1s", "11m"} {
		var stdout, stderr strings.Builder
		code := Main(context.Background(), []string{"-task-start-delay", v, "-config", "/nonexistent/broker.yaml"}, nil, nil, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "give a duration from 0 to 10m0s") {
			t.Errorf("-task-start-delay %s: exit %d, stderr %q; want 2 and the range", v, code, stderr.String())
		}
	}
}
