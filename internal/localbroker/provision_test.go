package localbroker

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

func TestProvisionGivesRunnableTaskDefinitions(t *testing.T) {
	_, awsCfg := mototest.Start(t)
	ctx := context.Background()
	cfg, err := config.Load("../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Provision(ctx, awsCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Subnets) == 0 || len(res.SecurityGroups) == 0 || res.AccountID == "" {
		t.Fatalf("resources incomplete: %+v", res)
	}
	// The dispatcher's RunTask shape must be accepted, and the agent must be
	// able to read the overrides back.
	ecsc := ecs.NewFromConfig(awsCfg)
	out, err := ecsc.RunTask(ctx, &ecs.RunTaskInput{
		Cluster: aws.String(res.ClusterARN), TaskDefinition: aws.String(cfg.TaskFamily("website")),
		LaunchType: ecstypes.LaunchTypeFargate, StartedBy: aws.String("01JD0000000000000000000000"),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{Subnets: res.Subnets, SecurityGroups: res.SecurityGroups}},
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: aws.String(config.ContainerName), Command: []string{"a", "b c"},
			Environment: []ecstypes.KeyValuePair{{Name: aws.String("K"), Value: aws.String("v")}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 1 {
		t.Fatalf("RunTask started %d tasks, failures %+v", len(out.Tasks), out.Failures)
	}
	desc, err := ecsc.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(res.ClusterARN), Tasks: []string{aws.ToString(out.Tasks[0].TaskArn)}})
	if err != nil {
		t.Fatal(err)
	}
	co := desc.Tasks[0].Overrides.ContainerOverrides[0]
	if len(co.Command) != 2 || co.Command[1] != "b c" || aws.ToString(co.Environment[0].Value) != "v" {
		t.Fatalf("overrides not kept: %+v", co)
	}
	lt, err := ecsc.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(res.ClusterARN), StartedBy: aws.String("01JD0000000000000000000000")})
	if err != nil || len(lt.TaskArns) != 1 {
		t.Fatalf("ListTasks by startedBy = %v, %v", lt, err)
	}
	t.Logf("task %s status %s/%s", aws.ToString(desc.Tasks[0].TaskArn), aws.ToString(desc.Tasks[0].LastStatus), aws.ToString(desc.Tasks[0].DesiredStatus))
}

// Provision publishes the broker's view as the stack does, and
// deploy-trigger's one call (GetItem by the table's ARN, named from the
// topic ARN alone) reads it: the ledger table, the run log group and the
// catalogue. moto evaluates no policy: what this proves is the table's
// name and shape and the item; the stack's tests prove its grant.
func TestProvisionPublishesTheView(t *testing.T) {
	_, awsCfg := mototest.Start(t)
	ctx := context.Background()
	cfg, err := config.Load("../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Provision(ctx, awsCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(res.TopicARN, ":")
	v, err := brokerview.Get(ctx, dynamodb.NewFromConfig(awsCfg), brokerview.TableARN(parts[1], parts[3], parts[4], parts[5]))
	if err != nil {
		t.Fatal(err)
	}
	if v.LedgerTable != res.LedgerTable || v.RunLogGroup != res.RunLogGroup || v.Broker != cfg.Broker.Name {
		t.Errorf("view locations %q %q %q, want %q %q %q", v.Broker, v.LedgerTable, v.RunLogGroup, cfg.Broker.Name, res.LedgerTable, res.RunLogGroup)
	}
	if got, want := strings.Join(v.JobNames(), ","), strings.Join(cfg.JobNames(), ","); got != want {
		t.Errorf("view jobs %s, want %s", got, want)
	}
	// Run pointers expire by the table's TTL, as in the stack (issue 26).
	ttl, err := dynamodb.NewFromConfig(awsCfg).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(res.ViewTable)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != brokerview.TTLAttr || d.TimeToLiveStatus != dbtypes.TimeToLiveStatusEnabled {
		t.Errorf("view table TTL %+v, want %s enabled", d, brokerview.TTLAttr)
	}
	// Provisioning again (a restarted local broker) rewrites it.
	if _, err := Provision(ctx, awsCfg, cfg); err != nil {
		t.Fatal(err)
	}
}
