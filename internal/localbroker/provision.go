package localbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// Resources are what Provision created in the emulator.
type Resources struct {
	AccountID      string
	Region         string
	TopicARN       string
	ClusterARN     string
	LedgerTable    string
	RunLogGroup    string // runlogs.go
	ViewTable      string // the broker's published view (internal/brokerview)
	Subnets        []string
	SecurityGroups []string
	// TaskDefinitions is the revision ARN registered for each job: the one
	// the dispatcher runs, as the stack pins it in AWS.
	TaskDefinitions map[string]string
}

// Provision creates the broker's resources in the emulator, the way the CDK
// stack creates them in an account: topic named after the broker, cluster,
// task definition family "<broker>-<job>" per job, ledger table.
func Provision(ctx context.Context, awsCfg aws.Config, cfg *config.Config) (*Resources, error) {
	r := &Resources{Region: awsCfg.Region, LedgerTable: LedgerTableName(cfg.Broker.Name), TaskDefinitions: map[string]string{},
		RunLogGroup: RunLogGroupName(cfg.Broker.Name), ViewTable: brokerview.TableName(cfg.Broker.Name)}
	id, err := sts.NewFromConfig(awsCfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("asking the emulator who we are: %w", err)
	}
	r.AccountID = aws.ToString(id.Account)

	topic, err := sns.NewFromConfig(awsCfg).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(cfg.Broker.Name)})
	if err != nil {
		return nil, fmt.Errorf("creating the broker topic: %w", err)
	}
	r.TopicARN = aws.ToString(topic.TopicArn)

	ecsc := ecs.NewFromConfig(awsCfg)
	cl, err := ecsc.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String(cfg.Broker.Name)})
	if err != nil {
		return nil, fmt.Errorf("creating the ECS cluster: %w", err)
	}
	r.ClusterARN = aws.ToString(cl.Cluster.ClusterArn)
	for _, name := range cfg.JobNames() {
		j := cfg.Jobs[name]
		var env []ecstypes.KeyValuePair
		for k, v := range j.Environment {
			env = append(env, ecstypes.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
		}
		td, err := ecsc.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
			Family:                  aws.String(cfg.TaskFamily(name)),
			NetworkMode:             ecstypes.NetworkModeAwsvpc,
			RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate},
			Cpu:                     aws.String(strconv.Itoa(j.CPU)),
			Memory:                  aws.String(strconv.Itoa(j.Memory)),
			ContainerDefinitions: []ecstypes.ContainerDefinition{{
				Name:  aws.String(config.ContainerName),
				Image: aws.String(j.Image),
				// Only a memory reservation at container level: moto echoes a
				// container's cpu and memory back as numbers, which the SDK refuses.
				MemoryReservation:      aws.Int32(int32(j.Memory)),
				Essential:              aws.Bool(true),
				Environment:            env,
				ReadonlyRootFilesystem: aws.Bool(true),
			}},
		})
		if err != nil {
			return nil, fmt.Errorf("registering the task definition of job %q: %w", name, err)
		}
		r.TaskDefinitions[name] = aws.ToString(td.TaskDefinition.TaskDefinitionArn)
	}

	db := dynamodb.NewFromConfig(awsCfg)
	_, err = db.CreateTable(ctx, ledger.TableInput(r.LedgerTable)) // as the stack creates it
	var inUse *dbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return nil, fmt.Errorf("creating the run ledger table: %w", err)
	}

	if err := publishView(ctx, db, r, cfg); err != nil {
		return nil, err
	}

	if err := createRunLogGroup(ctx, cloudwatchlogs.NewFromConfig(awsCfg), r.RunLogGroup); err != nil {
		return nil, fmt.Errorf("creating the run log group: %w", err)
	}

	ec2c := ec2.NewFromConfig(awsCfg)
	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil {
		return nil, fmt.Errorf("finding the default VPC's subnets: %w", err)
	}
	for _, s := range subnets.Subnets {
		r.Subnets = append(r.Subnets, aws.ToString(s.SubnetId))
	}
	sgs, err := ec2c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{{Name: aws.String("group-name"), Values: []string{"default"}}}})
	if err != nil {
		return nil, fmt.Errorf("finding the default security group: %w", err)
	}
	for _, g := range sgs.SecurityGroups {
		r.SecurityGroups = append(r.SecurityGroups, aws.ToString(g.GroupId))
		break
	}
	if len(r.Subnets) == 0 || len(r.SecurityGroups) == 0 {
		return nil, fmt.Errorf("the emulator has no default VPC subnets or security group in %s", r.Region)
	}
	return r, nil
}

// publishView creates the view table and writes the broker's published view
// into it, as the stack does (infra/internal/broker/view.go): deploy-trigger
// finds the ledger table, the run log group and the catalogue from the topic
// alone. Local mode has no IAM and so no reader role: readers use their own
// session (moto evaluates no policy).
func publishView(ctx context.Context, db *dynamodb.Client, r *Resources, cfg *config.Config) error {
	_, err := db.CreateTable(ctx, brokerview.TableInput(r.ViewTable))
	var inUse *dbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("creating the published view's table: %w", err)
	}
	if err == nil {
		// Run pointers expire, as the stack's table says (issue 26).
		if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(r.ViewTable),
			TimeToLiveSpecification: &dbtypes.TimeToLiveSpecification{AttributeName: aws.String(brokerview.TTLAttr), Enabled: aws.Bool(true)}}); err != nil {
			return fmt.Errorf("setting the published view table's TTL: %w", err)
		}
	}
	v := brokerview.Build(cfg, brokerview.Locations{LedgerTable: r.LedgerTable, RunLogGroup: r.RunLogGroup})
	if err := brokerview.Put(ctx, db, r.ViewTable, v); err != nil {
		return fmt.Errorf("publishing the broker's view: %w", err)
	}
	return nil
}
