package localbroker

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Security review of issue 26 (local mode): a hostile job holds its own
// deployment session and talks to local mode's endpoint, whose mirror of
// the AWS Denies (inboxmirror.go, sigcheck.go) keys on the request's signed
// service and operation. The job signs its requests itself, so it chooses
// how the credential scope spells the service and how X-Amz-Target spells
// the operation. moto routes a signed request by the scope's service
// lower-cased (moto_server/werkzeug_app.py), takes the action from an
// Action parameter (URL or form body) before X-Amz-Target, and then after
// the LAST "." of X-Amz-Target (core/responses.py), parsing the body by its
// content type; the mirror compares the service case-sensitively, takes
// the operation after the FIRST "." of X-Amz-Target whenever there is one,
// and reads the body as JSON then.
// Each case below is a request the mirror must refuse whatever its spelling;
// the signature itself is valid (the job has its secret). What is proven:
// local mode's mirror, not AWS (AWS signs the scope's service as given and
// rejects a wrong one; IAM evaluates the real action).
func TestAttackJobSpellsItsWayPastTheMirror(t *testing.T) {
	k := testKeyring()
	f := newMirrorFixture(t, k)
	ctx := context.Background()
	job := f.job

	// The broker's resources, made in the emulator directly (as the
	// dispatcher does): an inbox holding an assignment with a secret, a run
	// queue, the view table.
	direct := f.direct()
	inbox, runQ := f.inboxWithSecret(t), f.runQueue(t)
	view := brokerview.TableName("sig-broker")
	if _, err := dynamodb.NewFromConfig(direct).CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String(view), BillingMode: dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String(brokerview.KeyAttr), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String(brokerview.KeyAttr), KeyType: dbtypes.KeyTypeHash}}}); err != nil {
		t.Fatal(err)
	}

	call := func(service, target string, payload map[string]any) (int, string) {
		t.Helper()
		body, _ := json.Marshal(payload)
		path := "/"
		if op, ok := strings.CutPrefix(target, "?"); ok {
			// The harmless operation in X-Amz-Target, the real one in the
			// URL's Action, which moto reads first.
			path, target = "/?Action="+op, "AmazonSQS.ListQueues"
			if service == "dynamodb" {
				target = "DynamoDB_20120810.ListTables"
			}
		}
		return f.post(t, job, service, moto.Region, path, "application/x-amz-json-1.0", target, string(body))
	}
	// Refused: 403 AccessDenied from the mirror, or 400 from the endpoint's
	// refusal of a request it cannot read as the emulator will
	// (canonical.go), which is what every non-canonical spelling gets.
	refused := func(what string, code int, body string) {
		t.Helper()
		if !mirrorRefused(code, body) {
			t.Errorf("%s: HTTP %d %s, want 403 AccessDenied from local mode's mirror or 400 from its canonical check", what, code, clip(body))
		}
	}
	// A form body under a JSON operation's X-Amz-Target: the endpoint reads
	// the body as JSON (and finds no queue), moto as the query protocol.
	form := func(target, body string) (int, string) {
		t.Helper()
		return f.post(t, job, "sqs", moto.Region, "/", "application/x-www-form-urlencoded", target, body)
	}
	code, body := form("AmazonSQS.ListQueues", "Action=ReceiveMessage&Version=2012-11-05&VisibilityTimeout=0&QueueUrl="+url.QueryEscape(inbox))
	refused("a job reading the next run's assignment, a form body under X-Amz-Target", code, body)
	if strings.Contains(body, nextRunSecret) {
		t.Errorf("a job read an assignment's secret from a warm runner's inbox (a form body under X-Amz-Target)")
	}
	// Control: the SDK's own spelling is refused.
	code, body = call("sqs", "AmazonSQS.ReceiveMessage", map[string]any{"QueueUrl": inbox})
	refused("a job receiving from an inbox (the SDK's spelling)", code, body)

	for _, c := range []struct{ what, service, target string }{
		{"the scope's service in capitals", "SQS", "AmazonSQS.ReceiveMessage"},
		{"an operation with a second dot", "sqs", "AmazonSQS.X.ReceiveMessage"},
	} {
		code, body := call(c.service, c.target, map[string]any{"QueueUrl": inbox, "WaitTimeSeconds": 0, "VisibilityTimeout": 0})
		refused("a job reading the next run's assignment, "+c.what, code, body)
		if strings.Contains(body, nextRunSecret) {
			t.Errorf("a job read an assignment's secret from a warm runner's inbox (%s)", c.what)
		}
	}
	for _, c := range []struct{ what, service, target string }{
		{"the scope's service in capitals", "SQS", "AmazonSQS.SendMessage"},
		{"an operation with a second dot", "sqs", "AmazonSQS.X.SendMessage"},
		{"the operation in the URL's Action", "sqs", "?SendMessage"},
	} {
		code, body := call(c.service, c.target, map[string]any{"QueueUrl": runQ, "MessageBody": `{"v":1,"records":[]}`,
			"MessageGroupId": "g", "MessageDeduplicationId": "forged-exit"})
		refused("a job forging a record on a run queue, "+c.what, code, body)
	}
	for _, c := range []struct{ what, service, target string }{
		{"the scope's service in capitals", "DynamoDB", "DynamoDB_20120810.PutItem"},
		{"an operation with a second dot", "dynamodb", "DynamoDB_20120810.X.PutItem"},
		{"the operation in the URL's Action", "dynamodb", "?PutItem"},
	} {
		code, body := call(c.service, c.target, map[string]any{"TableName": view, "Item": map[string]any{
			brokerview.KeyAttr: map[string]string{"S": brokerview.RunKey(protocol.NewRunID(time.Now()))}, brokerview.QueueAttr: map[string]string{"S": runQ}}})
		refused("a job forging a run pointer, "+c.what, code, body)
	}
	if n, err := dynamodb.NewFromConfig(direct).Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(view)}); err != nil {
		t.Fatal(err)
	} else if n.Count != 0 {
		t.Errorf("the view table holds %d run pointers a job wrote", n.Count)
	}
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
