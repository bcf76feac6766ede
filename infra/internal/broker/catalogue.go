package broker

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"
)

// MaxFargateStopTimeout is the longest ECS waits between SIGTERM and SIGKILL
// on Fargate.
const MaxFargateStopTimeout = 120 * time.Second

// stopMargin is what the runner needs after the grace period to report exit.
const stopMargin = 10 * time.Second

// JobCatalogueProps configures the catalogue's ECS side.
type JobCatalogueProps struct {
	Config *config.Config
	// RunQueueArn is the ARN pattern of the broker's run queues.
	RunQueueArn *string
	// ClusterName is the broker cluster's name: no job may control it or
	// its tasks.
	ClusterName string
	// LogRetention applies to the run log group.
	LogRetention awslogs.RetentionDays
	// LedgerArn is the run ledger table, denied to every job.
	LedgerArn *string
	// SqsAbacUnavailable is true in the regions without SQS ABAC,
	// SqsAbacAvailable elsewhere.
	SqsAbacUnavailable, SqsAbacAvailable awscdk.CfnCondition
	// RunLogKey encrypts the run log group, which holds every run's
	// unredacted output: "" for CloudWatch Logs' own encryption,
	// RunLogKeyCreate for a customer-managed key of the stack, or the ARN
	// of an existing KMS key (whose policy must let CloudWatch Logs use it
	// for RunLogGroupName).
	RunLogKey string
}

// RunLogKeyCreate asks for a customer-managed key of the stack for the run
// log group.
const RunLogKeyCreate = "create"

// RunLogGroupName is the run log group's name when it has a customer-managed
// key: the key policy's encryption-context condition names the group, so
// the name must be known before the group exists.
func RunLogGroupName(broker string) string { return "/deploy-broker/" + broker + "/runs" }

// JobCatalogue is one Job per catalogue entry, the execution role they share
// and the log group every runner writes to.
type JobCatalogue interface {
	constructs.Construct
	Jobs() []Job
	ExecutionRole() awsiam.IRole
	LogGroup() awslogs.ILogGroup
}

type jobCatalogue struct {
	constructs.Construct
	jobs     []Job
	exec     awsiam.Role
	logGroup awslogs.LogGroup
}

// NewJobCatalogue creates the catalogue. It fails on a configuration the
// stack cannot express (a secret reference that is no ARN ECS takes, a grace
// period longer than Fargate allows).
func NewJobCatalogue(scope constructs.Construct, id string, props *JobCatalogueProps) (JobCatalogue, error) {
	cfg := props.Config
	stop := cfg.Runner.Grace.D() + stopMargin
	if stop > MaxFargateStopTimeout {
		return nil, fmt.Errorf("runner.grace %s is too long: Fargate kills a container at most %s after SIGTERM and the runner needs %s to report, so grace may be at most %s",
			cfg.Runner.Grace.D(), MaxFargateStopTimeout, stopMargin, MaxFargateStopTimeout-stopMargin)
	}
	secrets := map[string][]JobSecret{}
	var smResources, ssmResources, repos []string
	for _, name := range cfg.JobNames() {
		job := cfg.Jobs[name]
		for _, env := range sortedKeys(job.Secrets) {
			// Checked when the catalogue was read (config.Parse).
			s, err := config.ParseSecret(job.Secrets[env])
			if err != nil {
				return nil, fmt.Errorf("job %q: secret %s: %w", name, env, err)
			}
			secrets[name] = append(secrets[name], JobSecret{Name: env, ValueFrom: s.ValueFrom})
			if s.Kind == config.SecretsManager {
				smResources = append(smResources, s.Resource)
			} else {
				ssmResources = append(ssmResources, s.Resource)
			}
		}
		if img, ok := naming.ParseECRImage(job.Image); ok {
			repos = append(repos, img.RepositoryARN())
		}
	}

	this := constructs.NewConstruct(scope, &id)
	var statements []awsiam.PolicyStatement
	if len(repos) > 0 {
		statements = append(statements,
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("PullJobImages"),
				Actions:   jsii.Strings("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
				Resources: jsii.Strings(unique(repos)...),
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:     jsii.String("EcrAuthorizationToken"),
				Actions: jsii.Strings("ecr:GetAuthorizationToken"),
				// GetAuthorizationToken has no resource-level permissions.
				Resources: jsii.Strings("*"),
			}))
	}
	if len(smResources) > 0 {
		statements = append(statements, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadJobSecrets"),
			Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
			Resources: jsii.Strings(unique(smResources)...),
		}))
	}
	if len(ssmResources) > 0 {
		statements = append(statements, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadJobParameters"),
			Actions:   jsii.Strings("ssm:GetParameters"),
			Resources: jsii.Strings(unique(ssmResources)...),
		}))
	}
	inline := map[string]awsiam.PolicyDocument{}
	if len(statements) > 0 {
		inline["job-images-and-secrets"] = awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements})
	}
	exec := awsiam.NewRole(this, jsii.String("ExecutionRole"), &awsiam.RoleProps{
		// No aws:SourceArn/aws:SourceAccount here: the "Amazon ECS task
		// execution IAM role" page documents this role's trust policy with
		// the service principal alone, and documents no confused-deputy
		// condition for the pulls and secret reads Fargate makes with it
		// (unlike the "Amazon ECS task IAM role" page for task roles).
		AssumedBy:      awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil),
		Path:           jsii.String(config.RolePath(cfg.Broker.Name)),
		Description:    jsii.String("deploy-broker task execution: pulls job images, reads job secrets, writes run logs"),
		InlinePolicies: &inline,
	})
	logProps := &awslogs.LogGroupProps{
		Retention:     props.LogRetention,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	}
	if props.RunLogKey != "" {
		logProps.LogGroupName = jsii.String(RunLogGroupName(cfg.Broker.Name))
		logProps.EncryptionKey = runLogKey(this, cfg.Broker.Name, props.RunLogKey)
	}
	logGroup := awslogs.NewLogGroup(this, jsii.String("RunLogs"), logProps)

	c := &jobCatalogue{Construct: this, exec: exec, logGroup: logGroup}
	for _, name := range cfg.JobNames() {
		c.jobs = append(c.jobs, NewJob(this, "Job-"+name, &JobProps{
			Name:          name,
			Job:           cfg.Jobs[name],
			Family:        cfg.TaskFamily(name),
			Secrets:       secrets[name],
			ExecutionRole: exec,
			LogGroup:      logGroup,
			RunQueueArn:   props.RunQueueArn,
			LedgerArn:     props.LedgerArn,
			Broker:        cfg.Broker.Name,
			ClusterName:   props.ClusterName,
			// "<broker>-*": every family of this broker (and of brokers whose
			// name starts with "<broker>-", which is stricter, not looser).
			BrokerFamilies: arn("ecs", "task-definition/"+cfg.Broker.Name+"-*"),
			// Every role under the broker's path: the job roles, the
			// execution role and the dispatcher's (a name pattern, not the
			// roles' ARNs: those would make each job role depend on all).
			BrokerRoles:        jsii.String("arn:" + *awscdk.Aws_PARTITION() + ":iam::" + *awscdk.Aws_ACCOUNT_ID() + ":role" + config.RolePath(cfg.Broker.Name) + "*"),
			RolePath:           config.RolePath(cfg.Broker.Name),
			SqsAbacUnavailable: props.SqsAbacUnavailable,
			SqsAbacAvailable:   props.SqsAbacAvailable,
			StopTimeout:        awscdk.Duration_Seconds(jsii.Number(stop.Seconds())),
		}))
	}
	return c, nil
}

// runLogKey is the run log group's key: an existing one by ARN, or a new
// one (rotation on, kept on delete) whose policy is the account's
// administrative statement plus CloudWatch Logs of this region, for this log
// group only. The CloudWatch Logs User Guide ("Encrypt log data in
// CloudWatch Logs using AWS Key Management Service") documents that
// statement: principal logs.<region>.amazonaws.com, kms:Encrypt*,
// kms:Decrypt*, kms:ReEncrypt*, kms:GenerateDataKey*, kms:Describe*, with
// kms:EncryptionContext:aws:logs:arn equal to the log group's ARN.
func runLogKey(scope constructs.Construct, broker, spec string) awskms.IKey {
	if spec != RunLogKeyCreate {
		return awskms.Key_FromKeyArn(scope, jsii.String("RunLogKey"), jsii.String(spec))
	}
	key := awskms.NewKey(scope, jsii.String("RunLogKey"), &awskms.KeyProps{
		Alias:             jsii.String(broker + "-run-logs"),
		Description:       jsii.String("Encrypts the deploy-broker run log group (every run's unredacted output)"),
		EnableKeyRotation: jsii.Bool(true),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchLogsUsesKeyForRunLogGroupOnly"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("logs."+*awscdk.Aws_REGION()+".amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"),
		// In a key policy "*" is this key.
		Resources: jsii.Strings("*"),
		Conditions: &map[string]interface{}{
			"ArnEquals": map[string]interface{}{"kms:EncryptionContext:aws:logs:arn": arn("logs", "log-group:"+RunLogGroupName(broker))},
		},
	}), jsii.Bool(false))
	return key
}

func (c *jobCatalogue) Jobs() []Job                 { return c.jobs }
func (c *jobCatalogue) ExecutionRole() awsiam.IRole { return c.exec }
func (c *jobCatalogue) LogGroup() awslogs.ILogGroup { return c.logGroup }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func unique(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
