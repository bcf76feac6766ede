package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// AlarmsProps configures the broker's alarms.
type AlarmsProps struct {
	// Prefix starts every alarm's name (the broker name).
	Prefix          string
	Function        awslambda.IFunction
	DeadLetterQueue awssqs.IQueue
}

// Alarms fire on anything that means a request may have been lost or
// delayed: a dead-lettered event, a dispatcher error, a throttle.
type Alarms interface {
	constructs.Construct
	All() []awscloudwatch.Alarm
}

type alarms struct {
	constructs.Construct
	all []awscloudwatch.Alarm
}

// NewAlarms creates the three alarms, each on one datapoint of at least one
// over five minutes; no data is not breaching. They have no actions: wire
// them to your paging topic (see docs/INFRA.md).
func NewAlarms(scope constructs.Construct, id string, props *AlarmsProps) Alarms {
	this := constructs.NewConstruct(scope, &id)
	period := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}
	sum := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
	mk := func(id, name, desc string, m awscloudwatch.Metric) awscloudwatch.Alarm {
		return m.CreateAlarm(this, jsii.String(id), &awscloudwatch.CreateAlarmOptions{
			AlarmName:          jsii.String(props.Prefix + "-" + name),
			AlarmDescription:   jsii.String(desc),
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
	}
	all := []awscloudwatch.Alarm{
		mk("DeadLetters", "dispatcher-dead-letters",
			"Events reached the dispatcher's dead-letter queue: run requests, task events or sweeps were lost. Inspect the queue's messages.",
			props.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(period)),
		mk("Errors", "dispatcher-errors",
			"The dispatcher Lambda failed invocations (Lambda retries them, then dead-letters). See its log group.",
			props.Function.MetricErrors(sum)),
		mk("Throttles", "dispatcher-throttles",
			"The dispatcher Lambda was throttled at its reserved concurrency: requests are delayed.",
			props.Function.MetricThrottles(sum)),
	}
	return &alarms{Construct: this, all: all}
}

func (a *alarms) All() []awscloudwatch.Alarm { return a.all }
