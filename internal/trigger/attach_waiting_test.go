package trigger

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// countedQueries passes every Query to the real client (moto) and counts it.
type countedQueries struct {
	*dynamodb.Client
	n    atomic.Int64
	seen chan struct{}
}

func (c *countedQueries) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.Client.Query(ctx, in, opts...)
	if c.n.Add(1) == 3 {
		close(c.seen)
	}
	return out, err
}

// Bug (issue 21): attach (and logs --follow) on a run that is queued or
// awaiting approval exited 242 at once ("has no task (status queued)").
// It waits for the run to start now, then follows it to its end. The
// ledger and the run log are moto's on loopback; the dispatcher's part is
// played by the ledger's own writes (Hold, StartWaiting, Start).
func TestAttachWaitsForAWaitingRunToStart(t *testing.T) {
	for _, status := range []ledger.Status{ledger.Queued, ledger.AwaitingApproval} {
		t.Run(string(status), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, cfg := mototest.Start(t)
			db := dynamodb.NewFromConfig(cfg)
			if _, err := db.CreateTable(ctx, ledger.TableInput("ledger")); err != nil {
				t.Fatal(err)
			}
			store := ledger.New(db, "ledger", time.Hour)
			now := time.Now()
			runID := protocol.NewRunID(now)
			if err := store.Claim(ctx, ledger.Item{RunID: runID, Status: ledger.Launching, Job: "web", CreatedAt: now, ClaimToken: ledger.NewToken()}); err != nil {
				t.Fatal(err)
			}
			if err := store.Hold(ctx, runID, status, "{}", "https://sqs/q", now); err != nil {
				t.Fatal(err)
			}

			var out, errb bytes.Buffer
			a := newApp(func(string) string { return "" }, strings.NewReader(""), &out, &errb, nil)
			q := &countedQueries{Client: db, seen: make(chan struct{})}
			logs := cloudwatchlogs.NewFromConfig(cfg)
			f := &logFollower{app: a, attach: true, follow: true, h: historyReader{db: q, table: "ledger"}, logs: logs,
				cli:     &logsCLI{RunID: runID, LogGroup: "/deploy-broker/runs", Poll: 5 * time.Millisecond, LostAfter: time.Minute},
				atStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
			done := make(chan error, 1)
			go func() { done <- f.run(ctx) }()
			select {
			case err := <-done:
				t.Fatalf("attach ended (code %d: %v) while the run was %s, before it started", exitcode.Code(err), err, status)
			case <-q.seen: // three reads of the ledger, the run still waiting
			}

			// The run starts: its task writes the run log, then the ledger
			// records the task.
			task := "arn:aws:ecs:eu-west-1:111111111111:task/c/abc"
			writeRunLog(ctx, t, logs, "/deploy-broker/runs", protocol.RunLogStream("web", "runner", task), runID,
				protocol.RunLogLine{Lines: []protocol.Line{protocol.RunLogLineFor(protocol.Stdout, []byte("deploying"), false)}},
				protocol.RunLogLine{Exit: &protocol.Exit{Code: 3, Reason: protocol.ReasonCompleted}})
			if _, err := store.StartWaiting(ctx, runID, status, now.Add(time.Minute), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Start(ctx, runID, task, "https://sqs/q"); err != nil {
				t.Fatal(err)
			}
			// The task stops: ECS's exit code, which attach waits for and
			// reports (attach_exit.go).
			code := 3
			if _, err := store.Finish(ctx, runID, ledger.End{At: time.Now(), StopCode: "EssentialContainerExited", ExitCode: &code}); err != nil {
				t.Fatal(err)
			}
			err := <-done
			a.flush()
			if exitcode.Code(err) != 3 || out.String() != "deploying\n" {
				t.Fatalf("code %d (%v), stdout %q", exitcode.Code(err), err, out.String())
			}
			if !strings.Contains(errb.String(), "run "+runID+" is "+string(status)+": waiting for it to start") {
				t.Errorf("stderr %q", errb.String())
			}
		})
	}
}

// writeRunLog writes run log lines numbered from 1, as the runner does.
func writeRunLog(ctx context.Context, t *testing.T, c *cloudwatchlogs.Client, group, stream, runID string, lines ...protocol.RunLogLine) {
	t.Helper()
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)}); err != nil {
		t.Fatal(err)
	}
	var events []cwltypes.InputLogEvent
	for i := range lines {
		lines[i].Run, lines[i].N = runID, uint64(i+1)
		events = append(events, cwltypes.InputLogEvent{Message: aws.String(string(protocol.EncodeRunLogLine(nil, &lines[i]))), Timestamp: aws.Int64(time.Now().UnixMilli())})
	}
	if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: events}); err != nil {
		t.Fatal(err)
	}
}
