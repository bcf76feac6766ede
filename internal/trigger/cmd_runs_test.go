package trigger

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

type deniedHistory struct{ in *dynamodb.QueryInput }

func (d *deniedHistory) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	d.in = in
	return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: dynamodb:Query"}
}

// A reader without the permission gets an error naming it; reads are
// Queries of the history index.
func TestHistoryAccessDeniedNamesThePermission(t *testing.T) {
	db := &deniedHistory{}
	h := historyReader{db: db, table: "ledger"}
	_, err := h.list(context.Background(), &runsCLI{Limit: 5}, time.Now().Add(-time.Hour), time.Now())
	if exitcode.Code(err) != exitcode.Broker || !strings.Contains(err.Error(), "needs dynamodb:Query on index history of table ledger") {
		t.Errorf("err = %v (code %d)", err, exitcode.Code(err))
	}
	if db.in == nil || *db.in.IndexName != ledger.HistoryIndex || *db.in.TableName != "ledger" {
		t.Errorf("query %+v", db.in)
	}
}

type deniedLogs struct{}

func (deniedLogs) GetLogEvents(context.Context, *cloudwatchlogs.GetLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: logs:GetLogEvents"}
}

func TestRunLogAccessDeniedNamesThePermission(t *testing.T) {
	_, err := lastExit(context.Background(), deniedLogs{}, "/deploy-broker/b/runs", historyRun{RunID: "R", Job: "j", TaskARN: "arn:aws:ecs:r:1:task/c/abc"})
	if exitcode.Code(err) != exitcode.Broker || !strings.Contains(err.Error(), "needs logs:GetLogEvents on log group /deploy-broker/b/runs") {
		t.Errorf("err = %v", err)
	}
	if s := protocol.RunLogStream("j", "runner", "arn:aws:ecs:r:1:task/c/abc"); s != "j/runner/abc" {
		t.Errorf("stream %q", s)
	}
}

// checkHistoryInvocation parses a documented runs/show/logs/attach command
// with its own flags, as deploy-trigger does.
func checkHistoryInvocation(t *testing.T, where string, args []string, getenv func(string) string) {
	t.Helper()
	var target any
	switch args[0] {
	case "runs":
		target = &runsCLI{}
	case "show":
		target = &showCLI{}
	default:
		target = &logsCLI{}
	}
	if err := parseSub(target, "deploy-trigger "+args[0], args[1:], getenv, &bytes.Buffer{}, &bytes.Buffer{}); err != nil && !errors.Is(err, errHelpShown) {
		t.Errorf("%s: deploy-trigger %s: %v", where, strings.Join(args, " "), err)
	}
}
