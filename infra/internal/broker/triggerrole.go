package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// GitHub's OIDC issuer and the audience the official
// aws-actions/configure-aws-credentials action asks for.
const (
	GitHubOIDCHost     = "token.actions.githubusercontent.com"
	GitHubOIDCAudience = "sts.amazonaws.com"
)

// TriggerRoleProps configures the GitHub Actions trigger role.
type TriggerRoleProps struct {
	// ProviderArn is an existing GitHub OIDC provider; empty creates one.
	ProviderArn string
	// Subjects are the exact `sub` claims allowed to assume the role.
	Subjects []string
	Topic    awssns.ITopic
	Key      awskms.IKey
	// RunQueueArn is the ARN pattern of the broker's run queues.
	RunQueueArn *string
	// MaxSession bounds the role's sessions: a workflow holds one session
	// for the whole run it tails. Zero means one hour.
	MaxSession awscdk.Duration
}

// TriggerRole is the role GitHub Actions workflows assume with their OIDC
// token to run deploy-trigger: it may publish to the broker topic (using the
// key only through SNS) and read run queues, nothing else.
type TriggerRole interface {
	constructs.Construct
	Role() awsiam.IRole
}

type triggerRole struct {
	constructs.Construct
	role awsiam.Role
}

// NewTriggerRole creates the role, and the OIDC provider when none is given.
// Its trust policy requires the exact audience and one of the exact
// subjects; its permissions are in its own identity policy (the run queues'
// policies, written by the dispatcher, name it too).
func NewTriggerRole(scope constructs.Construct, id string, props *TriggerRoleProps) TriggerRole {
	this := constructs.NewConstruct(scope, &id)
	providerArn := props.ProviderArn
	if providerArn == "" {
		provider := awsiam.NewOidcProviderNative(this, jsii.String("GitHubProvider"), &awsiam.OidcProviderNativeProps{
			Url:       jsii.String("https://" + GitHubOIDCHost),
			ClientIds: jsii.Strings(GitHubOIDCAudience),
		})
		providerArn = *provider.OidcProviderArn()
	}
	subjects := make([]interface{}, len(props.Subjects))
	for i, s := range props.Subjects {
		subjects[i] = s
	}
	statements := []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("PublishRunRequests"),
			Actions:   jsii.Strings("sns:Publish"),
			Resources: &[]*string{props.Topic.TopicArn()},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("UseTopicKeyThroughSnsOnly"),
			Actions:   jsii.Strings("kms:GenerateDataKey*", "kms:Decrypt"),
			Resources: &[]*string{props.Key.KeyArn()},
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{
					"kms:ViaService":                         snsService(),
					"kms:EncryptionContext:aws:sns:topicArn": props.Topic.TopicArn(),
				},
			},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("ReadRunQueues"),
			Actions: jsii.Strings("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
				"sqs:GetQueueAttributes", "sqs:GetQueueUrl"),
			Resources: &[]*string{props.RunQueueArn},
		}),
	}
	maxSession := props.MaxSession
	if maxSession == nil {
		maxSession = awscdk.Duration_Hours(jsii.Number(1))
	}
	role := awsiam.NewRole(this, jsii.String("Role"), &awsiam.RoleProps{
		Description: jsii.String("deploy-broker trigger for GitHub Actions: publish run requests, read run queues"),
		AssumedBy: awsiam.NewWebIdentityPrincipal(jsii.String(providerArn), &map[string]interface{}{
			"StringEquals": map[string]interface{}{
				GitHubOIDCHost + ":aud": GitHubOIDCAudience,
				GitHubOIDCHost + ":sub": subjects,
			},
		}),
		MaxSessionDuration: maxSession,
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"trigger": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements}),
		},
	})
	return &triggerRole{Construct: this, role: role}
}

func (t *triggerRole) Role() awsiam.IRole { return t.role }
