package trigger

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/ledgertest"
)

// Issue 22: the run log says the job exited 0 (with an output), ECS says
// the runner container exited 3 (the dispatcher kept 3 in the ledger and
// flagged the log's 0). attach exits 3 without the record's outputs and
// says why; show flags the disagreement. Where the two agree, nothing
// changes.
func TestAttachAndShowReportECSsExitCode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, db, cfg := ledgertest.New(t)
	logs := cloudwatchlogs.NewFromConfig(cfg)
	const group = "/deploy-broker/runs"
	if _, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	h := historyReader{db: db, table: ledgertest.Table}
	for i, c := range []struct{ logCode, ecsCode, want int }{{0, 3, 3}, {3, 3, 3}} {
		runID := protocol.NewRunID(now.Add(time.Duration(i) * time.Millisecond))
		task := ledgertest.TaskARN + "-" + runID
		if err := store.Claim(ctx, ledger.Item{RunID: runID, Status: ledger.Launching, Job: "web", RequestedAt: now, CreatedAt: now,
			LeaseUntil: now, ClaimToken: ledger.NewToken(), RequestHash: "h", RequestedBy: "arn:aws:iam::111111111111:user/u"}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Start(ctx, runID, task, "https://sqs/q"); err != nil {
			t.Fatal(err)
		}
		end := ledger.End{At: now, StopCode: "EssentialContainerExited", ExitCode: &c.ecsCode}
		if c.logCode != c.ecsCode {
			end.LogExitCode = &c.logCode // as the dispatcher records it
		}
		if _, err := store.Finish(ctx, runID, end); err != nil {
			t.Fatal(err)
		}
		stream := protocol.RunLogStream("web", "runner", task)
		if _, err := logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)}); err != nil {
			t.Fatal(err)
		}
		line := protocol.EncodeRunLogLine(nil, &protocol.RunLogLine{Run: runID, N: 1, Exit: &protocol.Exit{Code: c.logCode, Reason: protocol.ReasonCompleted,
			Outputs: []protocol.JobOutput{{Name: "image", Value: "forged:1"}}}})
		if _, err := logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream),
			LogEvents: []cwltypes.InputLogEvent{{Message: aws.String(strings.TrimSpace(string(line))), Timestamp: aws.Int64(now.UnixMilli())}}}); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		f := &logFollower{app: newApp(func(string) string { return "" }, strings.NewReader(""), &out, &errb, nil), attach: true, follow: true,
			h: h, logs: logs, cli: &logsCLI{RunID: runID, LogGroup: group, Poll: time.Millisecond, LostAfter: time.Second},
			atStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
		err := f.run(ctx)
		f.app.flush()
		disagree := c.logCode != c.ecsCode
		if code := exitcode.Code(err); code != c.want {
			t.Errorf("log %d, ECS %d: attach exits %d (%v), want %d; stderr %q", c.logCode, c.ecsCode, code, err, c.want, errb.String())
		}
		if said := strings.Contains(errb.String(), "ECS reports the runner container exited"); said != disagree {
			t.Errorf("log %d, ECS %d: attach says so %v, want %v; stderr %q", c.logCode, c.ecsCode, said, disagree, errb.String())
		}
		if f.exit == nil || (len(f.exit.Outputs) == 0) != disagree {
			t.Errorf("log %d, ECS %d: attach reports outputs %+v", c.logCode, c.ecsCode, f.exit)
		}
		shown, _, err := h.get(ctx, runID)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"plain", "json"} {
			var b bytes.Buffer
			printRun(&b, mode, shown)
			flagged := strings.Contains(b.String(), "DISAGREES with the run log's exit record (0)") || strings.Contains(b.String(), `"log_exit_code":0`)
			if flagged != disagree || !strings.Contains(b.String(), "failed") {
				t.Errorf("log %d, ECS %d: show -o %s flags %v:\n%s", c.logCode, c.ecsCode, mode, flagged, b.String())
			}
		}
	}
}
