package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// SweepInterval is how often the dispatcher sweeps run queues.
const SweepInterval = 5

// DispatcherEventsProps configures the EventBridge rules of the dispatcher.
type DispatcherEventsProps struct {
	Function   awslambda.IFunction
	ClusterArn *string
	// DeadLetterQueue takes events EventBridge could not deliver.
	DeadLetterQueue awssqs.IQueue
	MaxEventAge     awscdk.Duration
}

// DispatcherEvents are the rules that invoke the dispatcher besides SNS:
// ECS task state changes of the broker cluster, and the sweep schedule.
type DispatcherEvents interface {
	constructs.Construct
	TaskStateRule() awsevents.IRule
	SweepRule() awsevents.IRule
}

type dispatcherEvents struct {
	constructs.Construct
	tasks, sweep awsevents.Rule
}

// NewDispatcherEvents creates both rules; each target's Lambda permission is
// scoped to its rule's ARN.
func NewDispatcherEvents(scope constructs.Construct, id string, props *DispatcherEventsProps) DispatcherEvents {
	this := constructs.NewConstruct(scope, &id)
	target := func() awsevents.IRuleTarget {
		return awseventstargets.NewLambdaFunction(props.Function, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: props.DeadLetterQueue,
			MaxEventAge:     props.MaxEventAge,
			RetryAttempts:   jsii.Number(DispatcherRetryAttempts),
		})
	}
	tasks := awsevents.NewRule(this, jsii.String("TaskStateChange"), &awsevents.RuleProps{
		Description: jsii.String("deploy-broker: ECS task state changes of the broker cluster to the dispatcher"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.ecs"),
			DetailType: jsii.Strings("ECS Task State Change"),
			Detail:     &map[string]interface{}{"clusterArn": []*string{props.ClusterArn}},
		},
		Targets: &[]awsevents.IRuleTarget{target()},
	})
	sweep := awsevents.NewRule(this, jsii.String("Sweep"), &awsevents.RuleProps{
		Description: jsii.String("deploy-broker: sweep expired run queues"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(SweepInterval))),
		Targets:     &[]awsevents.IRuleTarget{target()},
	})
	return &dispatcherEvents{Construct: this, tasks: tasks, sweep: sweep}
}

func (e *dispatcherEvents) TaskStateRule() awsevents.IRule { return e.tasks }
func (e *dispatcherEvents) SweepRule() awsevents.IRule     { return e.sweep }
