package broker

import (
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// StackProps configures the broker stack.
type StackProps struct {
	awscdk.StackProps
	Config *config.Config
	// ConfigPath is the file Config was read from; it is bundled with the
	// dispatcher.
	ConfigPath string
	// RepoRoot is the Go module root holding cmd/dispatcher-lambda.
	RepoRoot string
	// Build builds the dispatcher; nil means GoBuild.
	Build BuildFunc
}

// Stack is the broker stack and the constructs tests and outputs refer to.
type Stack struct {
	awscdk.Stack
	Key         TopicKey
	Topic       RequestTopic
	Ledger      Ledger
	Network     Network
	Cluster     RunCluster
	Catalogue   JobCatalogue
	TriggerRole TriggerRole   // nil without github_oidc
	ReaderRole  ReaderRole    // viewers read run history and logs (readerrole.go); nil without viewers
	View        PublishedView // what deploy-trigger reads to need only the topic (view.go)
	Dispatcher  Dispatcher
	Events      DispatcherEvents
	Alarms      Alarms

	bundling *localBundling
}

// NewStack creates the whole target-account stack from the configuration.
func NewStack(scope constructs.Construct, id string, props *StackProps) (_ *Stack, err error) {
	cfg := props.Config
	name := cfg.Broker.Name
	retention, err := LogRetention(cfg.Broker.LogRetentionDays)
	if err != nil {
		return nil, err
	}
	build := props.Build
	if build == nil {
		build = GoBuild
	}
	bundling := &localBundling{build: build, repoRoot: props.RepoRoot, configPath: props.ConfigPath}
	// CDK reports failures by throwing, which jsii turns into panics.
	defer func() {
		if r := recover(); r != nil {
			if berr := bundling.Err(); berr != nil {
				err = fmt.Errorf("bundling the dispatcher Lambda: %w", berr)
			} else {
				err = fmt.Errorf("building the broker stack: %v", r)
			}
		}
	}()
	sp := props.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String(fmt.Sprintf("deploy-broker %s (%s): run requests from CI, deployments on Fargate", name, cfg.Broker.AccountAlias))
	}
	s := &Stack{Stack: awscdk.NewStack(scope, &id, &sp), bundling: bundling}
	awscdk.Tags_Of(s.Stack).Add(jsii.String("deploy-broker:broker"), jsii.String(name), nil)

	runQueues := arn("sqs", naming.RunQueuePattern(name))
	publishers := ciPrincipals(cfg.TrustedPrincipals)
	// Built, not referenced: the key's policy names the topic, the topic
	// names the key.
	topicArn := arn("sns", name)

	s.Key = NewTopicKey(s.Stack, "TopicKey", &TopicKeyProps{Alias: name + "-topic", TopicArn: topicArn, Publishers: publishers})
	s.Topic = NewRequestTopic(s.Stack, "RequestTopic", &RequestTopicProps{TopicName: name, Key: s.Key.Key(), Publishers: publishers})
	s.Ledger = NewLedger(s.Stack, "Ledger", &LedgerProps{})
	s.Network = NewNetwork(s.Stack, "Network", &NetworkProps{Network: cfg.Network, LogRetention: retention})
	s.Cluster = NewRunCluster(s.Stack, "RunCluster", &RunClusterProps{ClusterName: name})
	noAbac := sqsAbacUnavailable(s.Stack)
	abac := awscdk.NewCfnCondition(s.Stack, jsii.String(SqsAbacAvailableCondition), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(noAbac),
	})
	abac.OverrideLogicalId(jsii.String(SqsAbacAvailableCondition))
	s.Catalogue, err = NewJobCatalogue(s.Stack, "Catalogue", &JobCatalogueProps{
		Config: cfg, RunQueueArn: runQueues, LogRetention: retention, ClusterName: s.Cluster.ClusterName(),
		LedgerArn: s.Ledger.Table().TableArn(), SqsAbacUnavailable: noAbac, SqsAbacAvailable: abac,
		RunLogKey: cfg.Broker.RunLogKey,
	})
	if err != nil {
		return nil, err
	}

	var extra []*string
	if g := cfg.GitHubOIDC; g != nil {
		s.TriggerRole = NewTriggerRole(s.Stack, "GitHubTrigger", &TriggerRoleProps{
			ProviderArn: g.ProviderARN,
			Subjects:    g.Subjects,
			Topic:       s.Topic.Topic(),
			Key:         s.Key.Key(),
			RunQueueArn: runQueues,
			MaxSession:  awscdk.Duration_Seconds(jsii.Number(triggerSession(cfg).Seconds())),
			// The tag condition of ReadOwnRunQueues needs SQS ABAC.
			SqsAbacUnavailable: noAbac,
		})
		extra = append(extra, s.TriggerRole.Role().RoleArn())
	}

	if viewers := cfg.ViewerPrincipals(); len(viewers) > 0 {
		s.ReaderRole = NewReaderRole(s.Stack, "RunReader", &ReaderRoleProps{
			Viewers: viewers, Ledger: s.Ledger.Table(), RunLogs: s.Catalogue.LogGroup(),
		})
	}

	viewProps := &PublishedViewProps{Config: cfg, Ledger: s.Ledger.Table(), RunLogs: s.Catalogue.LogGroup(), LogRetention: retention}
	if s.ReaderRole != nil {
		viewProps.ReaderRole = s.ReaderRole.Role()
	}
	if s.TriggerRole != nil {
		viewProps.TriggerRole = s.TriggerRole.Role()
	}
	if s.View, err = NewPublishedView(s.Stack, "PublishedView", viewProps); err != nil {
		return nil, err
	}

	code, err := dispatcherCode(bundling)
	if err != nil {
		return nil, fmt.Errorf("reading %s for the dispatcher: %w", props.ConfigPath, err)
	}
	if n := taskRevisionsSize(cfg.JobNames()); n > MaxTaskRevisionsEnv {
		return nil, fmt.Errorf("the catalogue's %d jobs need up to %d bytes in the dispatcher's %s variable, more than the %d that fit in Lambda's 4 KB of environment: shorten job names or split the catalogue over two brokers",
			len(cfg.Jobs), n, protocol.EnvTaskRevisions, MaxTaskRevisionsEnv)
	}
	maxAge := eventAge(cfg)
	s.Dispatcher = NewDispatcher(s.Stack, "Dispatcher", &DispatcherProps{
		Code:                code,
		FunctionName:        DispatcherFunctionName(name),
		Broker:              name,
		DeadLetterQueueName: naming.DeadLetterQueueName(name),
		Topic:               s.Topic.Topic(),
		Ledger:              s.Ledger.Table(),
		ClusterArn:          s.Cluster.ClusterArn(),
		ClusterName:         s.Cluster.ClusterName(),
		Jobs:                s.Catalogue.Jobs(),
		ExecutionRole:       s.Catalogue.ExecutionRole(),
		Network:             s.Network,
		RunQueueArn:         runQueues,
		ExtraPrincipals:     extra,
		RolePath:            config.RolePath(name),
		ViewTableArn:        s.View.Table().TableArn(),
		LogRetention:        retention,
		RunLogs:             s.Catalogue.LogGroup(),
		MaxEventAge:         maxAge,
	})
	s.Events = NewDispatcherEvents(s.Stack, "DispatcherEvents", &DispatcherEventsProps{
		Function:        s.Dispatcher.Function(),
		ClusterArn:      s.Cluster.ClusterArn(),
		DeadLetterQueue: s.Dispatcher.DeadLetterQueue(),
		MaxEventAge:     maxAge,
	})
	s.Alarms = NewAlarms(s.Stack, "Alarms", &AlarmsProps{Prefix: name, Function: s.Dispatcher.Function(), DeadLetterQueue: s.Dispatcher.DeadLetterQueue()})

	s.addOutputs(cfg, runQueues)
	s.addNagSuppressions(cfg)
	s.addWarnings(cfg)
	return s, nil
}

// SqsAbacUnavailableCondition is the logical id of the CloudFormation
// condition that is true in the regions without SQS ABAC.
const SqsAbacUnavailableCondition = "SqsAbacUnavailable"

// SqsAbacAvailableCondition is its negation.
const SqsAbacAvailableCondition = "SqsAbacAvailable"

// sqsAbacUnavailable is true where the stack is deployed in a region
// without SQS ABAC (SqsAbacUnavailableRegions).
func sqsAbacUnavailable(stack awscdk.Stack) awscdk.CfnCondition {
	var eq []awscdk.ICfnConditionExpression
	for _, r := range SqsAbacUnavailableRegions {
		eq = append(eq, awscdk.Fn_ConditionEquals(awscdk.Aws_REGION(), jsii.String(r)))
	}
	c := awscdk.NewCfnCondition(stack, jsii.String(SqsAbacUnavailableCondition), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionOr(eq...),
	})
	c.OverrideLogicalId(jsii.String(SqsAbacUnavailableCondition))
	return c
}

// eventAge is how long Lambda and EventBridge retry an event: a request is
// worthless once it may have expired, so no longer than max_request_age
// (within the 1 minute – 6 hours Lambda accepts).
func eventAge(cfg *config.Config) awscdk.Duration {
	age := cfg.Broker.MaxRequestAge.D()
	age = min(max(age, time.Minute), 6*time.Hour)
	return awscdk.Duration_Seconds(jsii.Number(age.Round(time.Second).Seconds()))
}

// triggerSession is the GitHub trigger role's maximum session: long enough to
// tail the longest job from request to release, rounded up to an hour,
// between the 1 and 12 hours IAM accepts.
func triggerSession(cfg *config.Config) time.Duration {
	var longest time.Duration
	for _, j := range cfg.Jobs {
		longest = max(longest, j.Timeout.D())
	}
	need := longest + cfg.Broker.MaxRequestAge.D() + cfg.Runner.Grace.D() + 5*time.Minute
	hours := (need + time.Hour - 1) / time.Hour
	return min(max(hours, 1), 12) * time.Hour
}

func (s *Stack) addOutputs(cfg *config.Config, runQueues *string) {
	out := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: value})
	}
	out("TopicArn", "deploy-trigger environment: topic_arn", s.Topic.Topic().TopicArn())
	out("Region", "deploy-trigger environment: region", awscdk.Aws_REGION())
	out("AccountId", "deploy-trigger environment: account_id", awscdk.Aws_ACCOUNT_ID())
	out("AccountAlias", "deploy-trigger environment: account_alias", jsii.String(cfg.Broker.AccountAlias))
	if s.TriggerRole != nil {
		out("TriggerRoleArn", "deploy-trigger environment for GitHub Actions: role_arn", s.TriggerRole.Role().RoleArn())
	}
	out("TopicKeyArn", "CI principals' IAM: kms:GenerateDataKey* and kms:Decrypt on this key, via SNS", s.Key.Key().KeyArn())
	out("RunQueueArnPattern", "CI principals' IAM: sqs:ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes, GetQueueUrl on these queues", runQueues)
	out("ClusterArn", "ECS cluster run tasks are placed on", s.Cluster.ClusterArn())
	out("LedgerTable", "Run ledger (DynamoDB table)", s.Ledger.Table().TableName())
	out("RunLogGroup", "CloudWatch Logs group with every run's full output", s.Catalogue.LogGroup().LogGroupName())
	if s.ReaderRole != nil {
		out("ReaderRoleArn", "deploy-trigger runs/show: --role-arn for the catalogue's viewers (Query on the ledger's history index, read run logs)", s.ReaderRole.Role().RoleArn())
	}
	out("ViewTable", "deploy-trigger reads the broker's published view here (dynamodb:GetItem, named from the topic; trusted principals of another account need it in their IAM policy)", s.View.Table().TableArn())
	out("ExecutionRoleArn", "Task execution role: grant it kms:Decrypt on customer-managed keys of job secrets and cross-account ECR pull", s.Catalogue.ExecutionRole().RoleArn())
	out("DeadLetterQueueUrl", "Dispatcher dead-letter queue", s.Dispatcher.DeadLetterQueue().QueueUrl())
}
