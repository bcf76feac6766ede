package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// jobGuard is the "broker-guard" policy of the role that holds a job's
// deployment permissions: whatever the job's own policy (or a managed
// policy the catalogue check cannot read) grants, the job cannot change
// what the broker runs, read, steer or delete any run's feedback, touch the
// ledger, the published view table or the run log, invoke or change the dispatcher, publish
// requests to the broker, control the
// broker cluster or its tasks, or forge the broker's lifecycle events.
// Each statement's Sid is stable: the trust table (docs/ARCHITECTURE.md)
// and the IAM evaluation tests name them. The catalogue check
// (config.Statement's broker guards) refuses job grants these would make
// dead.
//
// deployment is true for the deployment role, which is also denied sending
// to any run queue: only the runner (the task role) writes a run's feedback.
func jobGuard(props *JobProps, deployment bool) awsiam.PolicyDocument {
	deny := func(sid string, actions []string, resources []*string, conditions map[string]interface{}) awsiam.PolicyStatement {
		p := &awsiam.PolicyStatementProps{Sid: jsii.String(sid), Effect: awsiam.Effect_DENY, Actions: jsii.Strings(actions...), Resources: &resources}
		if conditions != nil {
			p.Conditions = &conditions
		}
		return awsiam.NewPolicyStatement(p)
	}
	clusterArn := arn("ecs", "cluster/"+props.ClusterName)
	dispatcher := arn("lambda", "function:"+DispatcherFunctionName(props.Broker))
	runLog := props.LogGroup.LogGroupName()
	viewTable := viewTableArn(props.Broker)
	statements := []awsiam.PolicyStatement{
		deny("NeverRegisterBrokerTaskDefinitions", JobDeniedTaskDefinitionActions, []*string{props.BrokerFamilies}, nil),
		// ECS accepts any task role whose trust policy admits ECS tasks of
		// this account: with RunTask on a broker family (another job's
		// pinned revision) or PassRole on another job's role (a task role
		// override), a job would run as another job, and could start
		// tasks with startedBy=<run id>.
		deny("NeverRunBrokerTaskDefinitions", JobDeniedRunActions, []*string{props.BrokerFamilies}, nil),
		deny("NeverPassBrokerRoles", []string{"iam:PassRole"}, []*string{props.BrokerRoles}, nil),
		deny("NeverTamperWithRunQueues", JobDeniedRunQueueActions, []*string{props.RunQueueArn}, nil),
		deny("NeverTouchTheRunLedger", []string{"dynamodb:*"}, []*string{props.LedgerArn, jsii.String(*props.LedgerArn + "/*")}, nil),
		// The published view table (view.go): its run pointers say which
		// queue a run's trigger tails, its view item what the trigger
		// trusts. The table's policy denies item writes to all but the
		// broker; this Deny keeps a job with dynamodb:* of its own from
		// lifting that policy (DeleteResourcePolicy, PutResourcePolicy),
		// then forging pointers or the view, or deleting the table
		// (security review F3).
		deny("NeverTouchTheView", []string{"dynamodb:*"}, []*string{viewTable, jsii.String(*viewTable + "/*")}, nil),
		// The run log is what attach, show and the ledger's outputs read:
		// a job writing into it (or deleting it) would forge them.
		deny("NeverTouchTheRunLog", []string{"logs:*"}, []*string{
			arn("logs", "log-group:"+*runLog), arn("logs", "log-group:"+*runLog+":*"),
		}, nil),
		// Invoking the dispatcher would hand it forged events (a task
		// state change, a sweep); changing it would change the broker.
		deny("NeverTouchTheDispatcher", []string{"lambda:*"}, []*string{dispatcher, jsii.String(*dispatcher + ":*")}, nil),
		// The broker's topic (named after the broker): in its own account a
		// job's identity policy is enough to publish there, and a request
		// it signs is a run request of whatever the job's role is trusted
		// for (the broker's own account among trusted_principals trusts
		// every job's role: one job would run the others).
		deny("NeverPublishToTheBroker", []string{"sns:Publish"}, []*string{arn("sns", props.Broker)}, nil),
		// Stopping another run's task, running a task on the broker
		// cluster (startedBy=<run id>), exec into a runner, retagging a
		// task: by resource, and by the ecs:cluster key for the actions
		// whose resource is not of the cluster (RunTask's task definition).
		deny("NeverControlTheBrokerCluster", []string{"ecs:*"}, []*string{
			clusterArn,
			arn("ecs", "task/"+props.ClusterName+"/*"),
			arn("ecs", "container-instance/"+props.ClusterName+"/*"),
			arn("ecs", "service/"+props.ClusterName+"/*"),
			arn("ecs", "task-set/"+props.ClusterName+"/*"),
		}, nil),
		deny("NeverControlTasksOnTheBrokerCluster", []string{"ecs:*"}, []*string{jsii.String("*")},
			map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": clusterArn}}),
		// Lifecycle events with the broker's source are the broker's word
		// to whoever routes them. events:source is multivalued (one value
		// per entry of PutEvents), so the Deny matches when ANY entry has
		// the broker's source; a plain StringEquals never matches a
		// multivalued key and would deny nothing.
		deny("NeverForgeLifecycleEvents", []string{"events:PutEvents"}, []*string{jsii.String("*")},
			map[string]interface{}{"ForAnyValue:StringEquals": map[string]interface{}{"events:source": protocol.EventSource}}),
	}
	inboxes := inboxArn(props.Broker)
	if deployment {
		statements = append(statements, deny("NeverWriteToRunQueues", []string{"sqs:SendMessage"}, []*string{props.RunQueueArn}, nil),
			// A warm runner's inbox carries its assignment (the run's
			// secret parameters): a job never reads, writes or even finds
			// one (issue 26).
			deny("NeverTouchWarmInboxes", []string{"sqs:*"}, []*string{inboxes}, nil))
	} else {
		// The runner only takes its assignment: only the dispatcher writes
		// an inbox (its policy denies everyone else too).
		statements = append(statements, deny("NeverWriteWarmInboxes", JobDeniedInboxActions, []*string{inboxes}, nil))
	}
	return awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements})
}

// JobDeniedTaskDefinitionActions are denied to every job role on the
// broker's task definition families.
var JobDeniedTaskDefinitionActions = []string{"ecs:RegisterTaskDefinition"}

// JobDeniedRunActions are denied to every job role on the broker's task
// definition families: only the dispatcher runs them.
var JobDeniedRunActions = []string{"ecs:RunTask", "ecs:StartTask"}

// JobDeniedInboxActions are denied to every runner (task role) on the
// warm runners' inboxes: what only the dispatcher may do there.
var JobDeniedInboxActions = protocol.InboxWriteActions

// inboxArn is the ARN pattern of the broker's warm runners' inboxes
// ("<broker>-warm-*", never a run queue's name: see protocol.InboxName).
func inboxArn(broker string) *string { return arn("sqs", protocol.InboxNamePattern(broker)) }

// JobDeniedRunQueueActions are denied to every job role on the run queues:
// it may only send to its own (SendFeedbackToOwnRunQueues). CreateQueue
// too: a queue created under a run's name before the dispatcher creates it
// would be the attacker's (the dispatcher refuses such a queue as well:
// internal/dispatcher/queue.go createQueue).
var JobDeniedRunQueueActions = []string{
	"sqs:AddPermission", "sqs:ChangeMessageVisibility", "sqs:CreateQueue", "sqs:DeleteMessage", "sqs:DeleteQueue",
	"sqs:PurgeQueue", "sqs:ReceiveMessage", "sqs:RemovePermission", "sqs:SetQueueAttributes",
	"sqs:TagQueue", "sqs:UntagQueue",
}
