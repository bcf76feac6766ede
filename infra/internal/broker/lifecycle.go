package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// lifecycleEventsStatement lets the dispatcher publish the runs' lifecycle
// events (protocol.EventSource, protocol.EventDetailType) on the account's
// default event bus, and nothing else: only that bus, and only entries
// whose source is the broker's (events:source, which EventBridge evaluates
// per entry of PutEvents), so the dispatcher cannot forge another service's
// events on the bus users route from.
func lifecycleEventsStatement() awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PublishLifecycleEvents"),
		Actions:   jsii.Strings("events:PutEvents"),
		Resources: &[]*string{arn("events", "event-bus/default")},
		// events:source is multivalued (one value per entry): every entry
		// must carry the broker's source (ForAllValues), and the key must
		// be there at all (Null false), since ForAllValues holds vacuously
		// for a missing key. A plain StringEquals never matches a
		// multivalued key: IAM would deny the dispatcher's own events.
		Conditions: &map[string]interface{}{
			"ForAllValues:StringEquals": map[string]interface{}{"events:source": protocol.EventSource},
			"Null":                      map[string]interface{}{"events:source": "false"},
		},
	})
}
