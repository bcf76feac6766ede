package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// RequestTopicProps configures the broker topic.
type RequestTopicProps struct {
	// TopicName is the topic's name (the broker name).
	TopicName string
	// Key encrypts the topic.
	Key awskms.IKey
	// Publishers may sns:Publish; nobody else gets anything from the topic
	// policy.
	Publishers []awsiam.IPrincipal
}

// RequestTopic is the broker topic CI publishes run, cancel and release
// requests to.
type RequestTopic interface {
	constructs.Construct
	Topic() awssns.ITopic
}

type requestTopic struct {
	constructs.Construct
	topic awssns.Topic
}

// NewRequestTopic creates the topic and its policy: publishing for the trusted
// CI principals, and a deny of any request not made over TLS.
func NewRequestTopic(scope constructs.Construct, id string, props *RequestTopicProps) RequestTopic {
	this := constructs.NewConstruct(scope, &id)
	topic := awssns.NewTopic(this, jsii.String("Topic"), &awssns.TopicProps{
		TopicName:   jsii.String(props.TopicName),
		DisplayName: jsii.String("deploy-broker run requests"),
		MasterKey:   props.Key,
		EnforceSSL:  jsii.Bool(true),
	})
	if len(props.Publishers) > 0 {
		topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("TrustedPrincipalsPublish"),
			Effect:     awsiam.Effect_ALLOW,
			Principals: &props.Publishers,
			Actions:    jsii.Strings("sns:Publish"),
			Resources:  &[]*string{topic.TopicArn()},
		}))
	}
	return &requestTopic{Construct: this, topic: topic}
}

func (t *requestTopic) Topic() awssns.ITopic { return t.topic }
