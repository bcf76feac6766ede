package localbroker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// Security review (warm runners, second pass): local mode's endpoint
// mirrored the job guard's Denies on the run queues, the inboxes and the
// view table, but not on the run ledger, the cluster or the run log, so a
// job's deployment session could, through it: rewrite its job's warm pool
// in the ledger (a slot's inbox pointing at a queue of its making, where
// the dispatcher would send the next run's assignment and its secret
// parameters; approvals, answers, run states alike); list, stop or start
// tasks on the broker's cluster (local mode's agent runs every task there
// as a runner, holding a runner's key, which the run-queue mirror does not
// refuse: a runner pointed at another run's queue forges its records); and
// write the run log that show, attach and the ledger's outputs read; and
// publish run requests to the broker's topic. In
// AWS broker-guard denies all three (NeverTouchTheRunLedger,
// NeverControlTheBrokerCluster, NeverControlTasksOnTheBrokerCluster,
// NeverTouchTheRunLog, NeverPublishToTheBroker). What is proven: local mode's mirror through moto,
// not AWS (iamcheck evaluates the stack's policies).
func TestEndpointDeniesJobsTheLedgerClusterAndRunLog(t *testing.T) {
	k := testKeyring()
	f := newMirrorFixture(t, k)
	ctx := context.Background()
	job := f.as(f.job)
	direct := f.direct()
	table := LedgerTableName("sig-broker")
	for _, name := range []string{table, "app-table"} { // the ledger, and a table of the job's own
		if _, err := dynamodb.NewFromConfig(direct).CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: dbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("run_id"), AttributeType: dbtypes.ScalarAttributeTypeS}},
			KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("run_id"), KeyType: dbtypes.KeyTypeHash}}}); err != nil {
			t.Fatal(err)
		}
	}
	cluster, err := ecs.NewFromConfig(direct).CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("sig-broker")})
	if err != nil {
		t.Fatal(err)
	}
	group := RunLogGroupName("sig-broker")
	if _, err := cloudwatchlogs.NewFromConfig(direct).CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	denied := func(what string, err error, sid string) {
		t.Helper()
		var ae interface{ ErrorMessage() string }
		if !errors.As(err, &ae) || !strings.Contains(ae.ErrorMessage(), sid) {
			t.Errorf("a job's session: %s: %v, want AccessDenied naming %s", what, err, sid)
		}
	}
	db, ecsc, logs := dynamodb.NewFromConfig(job), ecs.NewFromConfig(job), cloudwatchlogs.NewFromConfig(job)
	pool := map[string]dbtypes.AttributeValue{"run_id": &dbtypes.AttributeValueMemberS{Value: ledger.WarmKeyPrefix + "deploy"}}
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: pool})
	denied("rewriting a warm pool in the ledger", err, "NeverTouchTheRunLedger")
	_, err = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: pool})
	denied("reading the ledger", err, "NeverTouchTheRunLedger")
	_, err = db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	denied("deleting the ledger", err, "NeverTouchTheRunLedger")
	_, err = ecsc.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("sig-broker")})
	denied("listing the broker cluster's tasks", err, "NeverControlTheBrokerCluster")
	_, err = ecsc.StopTask(ctx, &ecs.StopTaskInput{Cluster: cluster.Cluster.ClusterArn, Task: aws.String("arn:aws:ecs:us-east-1:123456789012:task/sig-broker/0123")})
	denied("stopping a task on the broker cluster", err, "NeverControlTheBrokerCluster")
	_, err = ecsc.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String("sig-broker"), TaskDefinition: aws.String("sig-broker-deploy:1")})
	denied("starting a task on the broker cluster", err, "NeverControlTheBrokerCluster")
	_, err = logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String("deploy/runner/forged")})
	denied("writing the run log", err, "NeverTouchTheRunLog")

	_, err = sns.NewFromConfig(job).Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:aws:sns:us-east-1:123456789012:sig-broker"), Message: aws.String("{}")})
	denied("publishing to the broker's topic", err, "NeverPublishToTheBroker")

	// Control: the job's own table stays its own.
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("app-table"), Item: pool}); err != nil {
		t.Errorf("a job writing a table of its own: %v", err)
	}
}
