package broker

import (
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// DispatcherReservedConcurrency caps the dispatcher. Each invocation is a
// few API calls; a burst of requests waits in Lambda's async queue.
const DispatcherReservedConcurrency = 5

// DispatcherRetryAttempts is how often Lambda retries a failed async event.
const DispatcherRetryAttempts = 2

// DispatcherProps configures the dispatcher Lambda.
type DispatcherProps struct {
	// Code is the function's code (see dispatcherCode).
	Code awslambda.Code
	// FunctionName is DispatcherFunctionName(broker): every job role is
	// denied every Lambda action on it by name (NeverTouchTheDispatcher).
	FunctionName string
	// Broker is the broker's name (its warm runners' inboxes are named after it).
	Broker string
	// DeadLetterQueueName names the dead-letter queue.
	DeadLetterQueueName string
	Topic               awssns.ITopic
	Ledger              awsdynamodb.ITable
	ClusterArn          *string
	ClusterName         string
	// Jobs are the catalogue's jobs: the dispatcher may run exactly their
	// task definition revisions and pass exactly their roles.
	Jobs []Job
	// ExecutionRole is the jobs' shared task execution role.
	ExecutionRole awsiam.IRole
	Network       Network
	RunQueueArn   *string
	// ExtraPrincipals are trusted besides the trusted principals of the
	// configuration (the GitHub trigger role): they may run jobs without
	// allowed_principals. Run queues are readable by their requester only
	// (the dispatcher's per-run queue policy, dispatcher.QueuePolicy).
	ExtraPrincipals []*string
	LogRetention    awslogs.RetentionDays
	// RunLogs is the run log group: the dispatcher reads the job's outputs
	// from a stopped run's log into the ledger (dispatcher/outputs.go).
	RunLogs awslogs.ILogGroup
	// MaxEventAge is how long Lambda keeps retrying an event.
	MaxEventAge awscdk.Duration
	// RolePath is the IAM path of the dispatcher's role (config.RolePath):
	// every job role is denied passing a role under it.
	RolePath string
	// ViewTableArn is the published view's table, where the dispatcher
	// writes run pointers (view.go).
	ViewTableArn *string
}

// Dispatcher is the broker's Lambda function, its role, log group and
// dead-letter queue, subscribed to the broker topic.
type Dispatcher interface {
	constructs.Construct
	Function() awslambda.IFunction
	Role() awsiam.IRole
	DeadLetterQueue() awssqs.IQueue
	LogGroup() awslogs.ILogGroup
}

type dispatcher struct {
	constructs.Construct
	fn   awslambda.Function
	role awsiam.Role
	dlq  awssqs.Queue
	logs awslogs.LogGroup
}

// NewDispatcher creates the function with exactly the permissions of
// the dispatcher's rows of the trust table (docs/ARCHITECTURE.md).
func NewDispatcher(scope constructs.Construct, id string, props *DispatcherProps) Dispatcher {
	this := constructs.NewConstruct(scope, &id)
	logGroup := awslogs.NewLogGroup(this, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     props.LogRetention,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	dlq := awssqs.NewQueue(this, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(props.DeadLetterQueueName),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})

	taskArns := arn("ecs", "task/"+props.ClusterName+"/*")
	onThisCluster := &map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": props.ClusterArn}}
	// Exactly the revision each job's task definition resource created (its
	// Ref is the ARN with the revision), never "<family>:*": a revision
	// registered in a broker family by anyone else is never run.
	var taskDefs []*string
	for _, j := range props.Jobs {
		taskDefs = append(taskDefs, j.TaskDefinition().TaskDefinitionArn())
	}
	runPointerKeys := RunPointerKeys()
	statements := []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("WriteOwnLogs"),
			Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
			Resources: &[]*string{logGroup.LogGroupArn()},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadRunLogsForOutputs"),
			Actions:   jsii.Strings("logs:GetLogEvents"),
			Resources: &[]*string{props.RunLogs.LogGroupArn()},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("RunLedger"),
			Actions:   jsii.Strings("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
			Resources: &[]*string{props.Ledger.TableArn()},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			// Run pointers (issue 26): run#<run id> → the run's queue, for
			// the trigger; no other item of the view table.
			Sid:        jsii.String("WriteRunPointers"),
			Actions:    jsii.Strings("dynamodb:PutItem"),
			Resources:  &[]*string{props.ViewTableArn},
			Conditions: &runPointerKeys,
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("ManageRunQueues"),
			// The queue is created with its attributes, its policy and its
			// job tag in one CreateQueue. The SQS API reference (CreateQueue)
			// and the Developer Guide's "Amazon SQS API permissions: Actions
			// and resource reference" authorize CreateQueue, attributes and
			// Policy included, as sqs:CreateQueue; tags given at creation
			// need sqs:TagQueue as well ("To be able to tag a queue on
			// creation, you must have the sqs:CreateQueue and sqs:TagQueue
			// permissions"). The dispatcher never calls SetQueueAttributes,
			// so it may not change a queue's policy after creation.
			Actions: jsii.Strings("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl",
				"sqs:SendMessage", "sqs:TagQueue"),
			Resources: &[]*string{props.RunQueueArn},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String("ListRunQueuesForSweep"),
			Actions: jsii.Strings("sqs:ListQueues"),
			// ListQueues has no resource-level permissions.
			Resources: jsii.Strings("*"),
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("RunCatalogueTasksOnThisCluster"),
			Actions:    jsii.Strings("ecs:RunTask"),
			Resources:  &taskDefs,
			Conditions: onThisCluster,
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("NeverEnableExecuteCommand"),
			Effect:    awsiam.Effect_DENY,
			Actions:   jsii.Strings("ecs:RunTask"),
			Resources: &taskDefs,
			Conditions: &map[string]interface{}{
				"StringEqualsIgnoreCase": map[string]interface{}{"ecs:enable-execute-command": "true"},
			},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("TagTasksAtLaunch"),
			Actions:   jsii.Strings("ecs:TagResource"),
			Resources: &[]*string{taskArns},
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"ecs:CreateAction": "RunTask"},
			},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("StopTasksOnThisCluster"),
			Actions:    jsii.Strings("ecs:StopTask"),
			Resources:  &[]*string{taskArns},
			Conditions: onThisCluster,
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String("ListTasksOnThisCluster"),
			Actions: jsii.Strings("ecs:ListTasks"),
			// ListTasks is authorized on container instances, which Fargate
			// has none of; the cluster condition scopes it.
			Resources:  jsii.Strings("*"),
			Conditions: onThisCluster,
		}),
		lifecycleEventsStatement(),
	}
	warm := false
	for _, j := range props.Jobs {
		warm = warm || j.Warm() > 0
	}
	if warm {
		statements = append(statements, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("ManageWarmInboxes"),
			// A warm runner's inbox: created with its policy and job tag,
			// the assignment sent, deleted when the runner is spent or
			// ended (docs/DISPATCHER.md, "Warm runners").
			Actions:   jsii.Strings("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SendMessage", "sqs:TagQueue"),
			Resources: &[]*string{inboxArn(props.Broker)},
		}))
	}
	// Per job: its own task role and the execution role, only to ECS tasks.
	// (IAM cannot tie a PassRole to the RunTask it serves; the task
	// definition revision, pinned above, names exactly these roles.)
	sids := map[string]bool{}
	for _, j := range props.Jobs {
		sid := "PassRolesOfJob" + sidWord(j.Name())
		for n := 2; sids[sid]; n++ {
			sid = "PassRolesOfJob" + sidWord(j.Name()) + strconv.Itoa(n)
		}
		sids[sid] = true
		statements = append(statements, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(sid),
			Actions:   jsii.Strings("iam:PassRole"),
			Resources: &[]*string{j.TaskRole().RoleArn(), props.ExecutionRole.RoleArn()},
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"iam:PassedToService": "ecs-tasks.amazonaws.com"},
			},
		}))
	}
	role := awsiam.NewRole(this, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Path:        jsii.String(props.RolePath),
		Description: jsii.String("deploy-broker dispatcher: run ledger, run queues, run tasks of the catalogue on the broker cluster"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"dispatcher": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements}),
		},
	})

	net := props.Network
	fn := awslambda.NewFunction(this, jsii.String("Function"), &awslambda.FunctionProps{
		FunctionName:                 jsii.String(props.FunctionName),
		Description:                  jsii.String("deploy-broker dispatcher: run requests, ECS task events, queue sweep"),
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String("bootstrap"),
		Code:                         props.Code,
		Role:                         role,
		LogGroup:                     logGroup,
		LoggingFormat:                awslambda.LoggingFormat_JSON,
		MemorySize:                   jsii.Number(256),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(60)),
		ReservedConcurrentExecutions: jsii.Number(DispatcherReservedConcurrency),
		MaxEventAge:                  props.MaxEventAge,
		RetryAttempts:                jsii.Number(DispatcherRetryAttempts),
		DeadLetterQueue:              dlq,
		Environment: &map[string]*string{
			protocol.EnvConfig:          jsii.String("/var/task/" + BundledConfigName),
			protocol.EnvCluster:         props.ClusterArn,
			protocol.EnvLedgerTable:     props.Ledger.TableName(),
			protocol.EnvRunLogGroup:     props.RunLogs.LogGroupName(),
			protocol.EnvSubnets:         joinList(net.SubnetIDs()),
			protocol.EnvSecurityGroups:  joinList(net.SecurityGroupIDs()),
			protocol.EnvAssignPublicIP:  jsii.String(strconv.FormatBool(net.AssignPublicIP())),
			protocol.EnvExtraPrincipals: joinList(props.ExtraPrincipals),
			protocol.EnvAccountID:       awscdk.Aws_ACCOUNT_ID(),
			protocol.EnvTaskRevisions:   taskRevisions(props.Jobs),
			// The only principal a warm runner's inbox lets write to it.
			protocol.EnvDispatcherRole: role.RoleArn(),
		},
	})
	props.Topic.AddSubscription(awssnssubscriptions.NewLambdaSubscription(fn, &awssnssubscriptions.LambdaSubscriptionProps{
		DeadLetterQueue: dlq,
	}))
	return &dispatcher{Construct: this, fn: fn, role: role, dlq: dlq, logs: logGroup}
}

// DispatcherFunctionName is the dispatcher function's name: known before
// the function exists, so that the job roles can deny it by ARN without
// depending on it (the dispatcher's role depends on theirs).
func DispatcherFunctionName(broker string) string { return broker + "-dispatcher" }

func (d *dispatcher) Function() awslambda.IFunction  { return d.fn }
func (d *dispatcher) Role() awsiam.IRole             { return d.role }
func (d *dispatcher) DeadLetterQueue() awssqs.IQueue { return d.dlq }
func (d *dispatcher) LogGroup() awslogs.ILogGroup    { return d.logs }

// joinList joins values (tokens included) with commas.
func joinList(values []*string) *string {
	if len(values) == 0 {
		return jsii.String("")
	}
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = *v
	}
	return jsii.String(strings.Join(parts, ","))
}

// The stack hands the dispatcher the task definition revision it created
// for each job in protocol.EnvTaskRevisions, "<job>=<revision>,…" in
// catalogue order; the dispatcher runs "<broker>-<job>:<revision>" and
// nothing else.
//
// Revision numbers, not ARNs: Lambda allows 4 KB for all environment
// variables together, and an ARN per job (about 80 bytes) would limit the
// catalogue to a few dozen jobs. The family is the configuration's, and the
// partition, region and account are the dispatcher's own; IAM pins the full
// ARNs (RunCatalogueTasksOnThisCluster).

// MaxTaskRevisionsEnv bounds the protocol.EnvTaskRevisions value, leaving room in
// Lambda's 4 KB for the other variables.
const MaxTaskRevisionsEnv = 3000

// taskRevisions is protocol.EnvTaskRevisions' value: each revision is the last
// field of the task definition's ARN, cut out by CloudFormation.
func taskRevisions(jobs []Job) *string {
	parts := make([]string, len(jobs))
	for i, j := range jobs {
		rev := awscdk.Fn_Select(jsii.Number(6), awscdk.Fn_Split(jsii.String(":"), j.TaskDefinition().TaskDefinitionArn(), nil))
		parts[i] = j.Name() + "=" + *rev
	}
	return jsii.String(strings.Join(parts, ","))
}

// taskRevisionsSize is the longest EnvTaskRevisions can get: ECS numbers
// revisions up to 1,000,000 (7 digits).
func taskRevisionsSize(jobs []string) int {
	n := 0
	for i, j := range jobs {
		if i > 0 {
			n++
		}
		n += len(j) + 1 + 7
	}
	return n
}

// sidWord turns a job name (lower-case letters, digits, '-') into letters
// and digits for a statement id: "db-migrate" → "DbMigrate".
func sidWord(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if r == '-' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		b.WriteRune(r)
	}
	return b.String()
}
