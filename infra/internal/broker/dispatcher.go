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

	dispatchenv "github.com/deploy-broker/deploy-broker/internal/dispatcher"
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
	// DeadLetterQueueName names the dead-letter queue.
	DeadLetterQueueName string
	Topic               awssns.ITopic
	Ledger              awsdynamodb.ITable
	ClusterArn          *string
	ClusterName         string
	// TaskFamilies are the catalogue's task definition families: the only
	// ones the dispatcher may run.
	TaskFamilies []string
	// PassRoles are the jobs' task roles and the execution role: the only
	// roles the dispatcher may pass, and only to ECS tasks.
	PassRoles   []awsiam.IRole
	Network     Network
	RunQueueArn *string
	// ExtraPrincipals may read run queues besides the trusted principals of
	// the configuration (the GitHub trigger role).
	ExtraPrincipals []*string
	LogRetention    awslogs.RetentionDays
	// MaxEventAge is how long Lambda keeps retrying an event.
	MaxEventAge awscdk.Duration
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
	var taskDefs []*string
	for _, f := range props.TaskFamilies {
		taskDefs = append(taskDefs, arn("ecs", "task-definition/"+f+":*"))
	}
	var passRoles []*string
	for _, r := range props.PassRoles {
		passRoles = append(passRoles, r.RoleArn())
	}
	statements := []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("WriteOwnLogs"),
			Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
			Resources: &[]*string{logGroup.LogGroupArn()},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("RunLedger"),
			Actions:   jsii.Strings("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
			Resources: &[]*string{props.Ledger.TableArn()},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("ManageRunQueues"),
			// The queue is created with its attributes and policy in one
			// CreateQueue; SetQueueAttributes covers that policy where IAM
			// authorizes it as setting attributes. Nothing else is granted.
			Actions: jsii.Strings("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl",
				"sqs:SendMessage", "sqs:SetQueueAttributes", "sqs:TagQueue"),
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
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("PassJobRolesToEcsTasks"),
			Actions:   jsii.Strings("iam:PassRole"),
			Resources: &passRoles,
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"iam:PassedToService": "ecs-tasks.amazonaws.com"},
			},
		}),
	}
	role := awsiam.NewRole(this, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("deploy-broker dispatcher: run ledger, run queues, run tasks of the catalogue on the broker cluster"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"dispatcher": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements}),
		},
	})

	net := props.Network
	fn := awslambda.NewFunction(this, jsii.String("Function"), &awslambda.FunctionProps{
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
			dispatchenv.EnvConfig:          jsii.String("/var/task/" + BundledConfigName),
			dispatchenv.EnvCluster:         props.ClusterArn,
			dispatchenv.EnvLedgerTable:     props.Ledger.TableName(),
			dispatchenv.EnvSubnets:         joinList(net.SubnetIDs()),
			dispatchenv.EnvSecurityGroups:  joinList(net.SecurityGroupIDs()),
			dispatchenv.EnvAssignPublicIP:  jsii.String(strconv.FormatBool(net.AssignPublicIP())),
			dispatchenv.EnvExtraPrincipals: joinList(props.ExtraPrincipals),
			dispatchenv.EnvAccountID:       awscdk.Aws_ACCOUNT_ID(),
		},
	})
	props.Topic.AddSubscription(awssnssubscriptions.NewLambdaSubscription(fn, &awssnssubscriptions.LambdaSubscriptionProps{
		DeadLetterQueue: dlq,
	}))
	return &dispatcher{Construct: this, fn: fn, role: role, dlq: dlq, logs: logGroup}
}

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
