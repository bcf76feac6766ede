package localbroker

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// A job's deployment session may do nothing on the broker's view table
// (broker-guard's NeverTouchTheView, a Deny of dynamodb:* there): local
// mode's endpoint refuses it every operation naming the table, reads and
// table management included, and still serves the job its own table. What
// is proven: local mode's mirror, through the SDK against the emulator
// (moto evaluates no IAM; infra's tests check the stack's Deny).
func TestEndpointDeniesJobSessionsTheView(t *testing.T) {
	f := newMirrorFixture(t, testKeyring())
	ctx := context.Background()
	job := f.job
	direct := dynamodb.NewFromConfig(f.direct())
	view := brokerview.TableName("sig-broker")
	for _, name := range []string{view, "job-own"} {
		if _, err := direct.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: dbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String(brokerview.KeyAttr), AttributeType: dbtypes.ScalarAttributeTypeS}},
			KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String(brokerview.KeyAttr), KeyType: dbtypes.KeyTypeHash}}}); err != nil {
			t.Fatal(err)
		}
	}
	arn := "arn:aws:dynamodb:" + moto.Region + ":123456789012:table/" + view
	key := map[string]dbtypes.AttributeValue{brokerview.KeyAttr: &dbtypes.AttributeValueMemberS{Value: "run#x"}}
	db := dynamodb.NewFromConfig(f.as(job))
	calls := map[string]func(table string) error{
		"DeleteResourcePolicy": func(string) error {
			_, err := db.DeleteResourcePolicy(ctx, &dynamodb.DeleteResourcePolicyInput{ResourceArn: aws.String(arn)})
			return err
		},
		"PutResourcePolicy": func(string) error {
			_, err := db.PutResourcePolicy(ctx, &dynamodb.PutResourcePolicyInput{ResourceArn: aws.String(arn), Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
			return err
		},
		"GetItem": func(table string) error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key})
			return err
		},
		"PutItem": func(table string) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key})
			return err
		},
		"BatchGetItem": func(table string) error {
			_, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]dbtypes.KeysAndAttributes{table: {Keys: []map[string]dbtypes.AttributeValue{key}}}})
			return err
		},
		"ExecuteStatement": func(table string) error {
			_, err := db.ExecuteStatement(ctx, &dynamodb.ExecuteStatementInput{Statement: aws.String(`SELECT * FROM "` + table + `"`)})
			return err
		},
		"UpdateTable": func(table string) error {
			_, err := db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(table), BillingMode: dbtypes.BillingModePayPerRequest})
			return err
		},
		"DescribeTable": func(table string) error {
			_, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
			return err
		},
		"DeleteTable": func(table string) error {
			_, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
			return err
		},
	}
	for _, op := range []string{"DeleteResourcePolicy", "PutResourcePolicy", "GetItem", "PutItem", "BatchGetItem", "ExecuteStatement", "UpdateTable", "DescribeTable", "DeleteTable"} {
		err := calls[op](view)
		if apiCode(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "NeverTouchTheView") {
			t.Errorf("a job's session calling dynamodb:%s on the view table: %v, want AccessDeniedException naming NeverTouchTheView", op, err)
		}
	}
	if _, err := direct.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(view)}); err != nil {
		t.Errorf("the view table is gone after the job's calls: %v", err)
	}
	// Control: the job's own table is served (the mirror is narrow).
	for _, op := range []string{"PutItem", "GetItem", "DescribeTable"} {
		if err := calls[op]("job-own"); err != nil {
			t.Errorf("a job's session calling dynamodb:%s on its own table: %v", op, err)
		}
	}
}

// Spellings the SDKs never send and the emulator reads otherwise than the
// endpoint would are refused with 400, whoever signs: the SQS queue named
// by the URL's path only (the emulator's fallback), and a JSON body that
// also parses as a query naming an Action.
func TestEndpointRefusesAmbiguousRequests(t *testing.T) {
	f := newMirrorFixture(t, testKeyring())
	ctx := context.Background()
	job := f.job
	inbox := protocol.InboxName("sig-broker", protocol.NewWarmSlotID(time.Now()))
	if _, err := sqs.NewFromConfig(f.direct()).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(inbox)}); err != nil {
		t.Fatal(err)
	}
	scope := [2]string{"sqs", moto.Region}
	do := func(path, ct, target, body string) (int, string) {
		t.Helper()
		return f.post(t, job, scope[0], scope[1], path, ct, target, body)
	}
	// The queue in the path only: the mirror reads it there too.
	if code, body := do("/123456789012/"+inbox, "application/x-www-form-urlencoded", "", "Action=ReceiveMessage&Version=2012-11-05"); code != http.StatusForbidden || !strings.Contains(body, "NeverTouchWarmInboxes") {
		t.Errorf("a job receiving from an inbox named by the path: HTTP %d %s, want 403 naming NeverTouchWarmInboxes", code, clip(body))
	}
	for _, c := range []struct{ what, path, ct, target, body string }{
		{"a JSON body that reads as Action=", "/", "application/x-amz-json-1.0", "AmazonSQS.ListQueues", `{"x":"&Action=ReceiveMessage&"}`},
		{"an Action in the URL and another in the body", "/?Action=ListQueues", "application/x-www-form-urlencoded", "", "Action=ReceiveMessage"},
		{"a parameter twice", "/", "application/x-www-form-urlencoded", "", "Action=ListQueues&Action=ReceiveMessage"},
	} {
		if code, body := do(c.path, c.ct, c.target, c.body); code != http.StatusBadRequest || !strings.Contains(body, "cannot read as the emulator will") {
			t.Errorf("%s: HTTP %d %s, want 400 from the endpoint's canonical check", c.what, code, clip(body))
		}
	}
	// Scopes the emulator routes to SQS under another name (its host
	// patterns match "queue.<region>" and "<service>.sqs").
	for _, sc := range [][2]string{{"queue", moto.Region}, {"kinesis", "sqs"}} {
		scope = sc
		if code, body := do("/", "application/x-amz-json-1.0", "AmazonSQS.ReceiveMessage", `{"QueueUrl":"`+inbox+`"}`); code != http.StatusBadRequest || !strings.Contains(body, "cannot read as the emulator will") {
			t.Errorf("a job reading an inbox signed for %s in %s: HTTP %d %s, want 400 from the endpoint's canonical check", sc[0], sc[1], code, clip(body))
		}
	}
}
