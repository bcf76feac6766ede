package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// TopicKeyProps configures the request topic's key.
type TopicKeyProps struct {
	// Alias is the key's alias, without the "alias/" prefix.
	Alias string
	// TopicArn is the ARN of the one topic the key encrypts. It is built
	// from the topic's name, not referenced, because the topic refers to the
	// key.
	TopicArn *string
	// Publishers are the CI principals that publish to the topic. They may
	// use the key only through SNS, for this topic.
	Publishers []awsiam.IPrincipal
}

// TopicKey is the customer-managed key (with rotation) of the request topic.
type TopicKey interface {
	constructs.Construct
	Key() awskms.IKey
}

type topicKey struct {
	constructs.Construct
	key awskms.Key
}

// NewTopicKey creates the key. Its policy is the account's administrative
// statement (the default key policy: IAM policies in this account decide who
// administers the key) plus one statement for the publishers.
func NewTopicKey(scope constructs.Construct, id string, props *TopicKeyProps) TopicKey {
	this := constructs.NewConstruct(scope, &id)
	key := awskms.NewKey(this, jsii.String("Key"), &awskms.KeyProps{
		Alias:             jsii.String(props.Alias),
		Description:       jsii.String("Encrypts deploy-broker run requests on the broker topic"),
		EnableKeyRotation: jsii.Bool(true),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	if len(props.Publishers) > 0 {
		key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("PublishersUseKeyThroughSnsForTopicOnly"),
			Effect:     awsiam.Effect_ALLOW,
			Principals: &props.Publishers,
			Actions:    jsii.Strings("kms:GenerateDataKey*", "kms:Decrypt"),
			// In a key policy "*" is this key.
			Resources: jsii.Strings("*"),
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{
					"kms:ViaService": snsService(),
					// SNS passes the topic ARN as encryption context.
					"kms:EncryptionContext:aws:sns:topicArn": props.TopicArn,
				},
			},
		}), jsii.Bool(false))
	}
	return &topicKey{Construct: this, key: key}
}

func (k *topicKey) Key() awskms.IKey { return k.key }

// snsService is the kms:ViaService value of SNS in the stack's region.
func snsService() *string {
	return jsii.String("sns." + *awscdk.Aws_REGION() + ".amazonaws.com")
}
