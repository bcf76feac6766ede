package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
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
	// SqsAbacUnavailable is true in the regions without SQS ABAC: only
	// there the role reads run queues by their name pattern alone.
	SqsAbacUnavailable awscdk.CfnCondition
	// MaxSession bounds the role's sessions: a workflow holds one session
	// for the whole run it tails. Zero means one hour.
	MaxSession awscdk.Duration
}

// TriggerRole is the role GitHub Actions workflows assume with their OIDC
// token to run deploy-trigger: it may publish to the broker topic (using the
// key only through SNS) and read the run queues it requested, nothing else.
//
// Every workflow of every configured subject assumes this one role: to IAM
// and to the dispatcher they are one principal, and each reads the others'
// runs (docs/ARCHITECTURE.md, threats). Runs of any other principal are
// closed to it twice: by its own policy (ReadOwnRunQueues, on the queue's
// requester tag) and by each run queue's policy (dispatcher.QueuePolicy's
// explicit Deny for every principal but the requester).
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
// policies, written by the dispatcher, name it too, for its own runs).
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
		// Only queues whose requester tag is this role: the dispatcher tags
		// each run queue at creation with its requester as aws:PrincipalArn
		// names it (the role's ARN; this role has no path), and nobody but
		// the broker's roles may tag a run queue (the queue's policy). In
		// the regions without SQS ABAC the tag is absent from the request
		// context and this never matches: ReadRunQueuesWithoutAbac below.
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadOwnRunQueues"),
			Actions:   jsii.Strings(TriggerRunQueueReadActions...),
			Resources: &[]*string{props.RunQueueArn},
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"aws:ResourceTag/" + protocol.TagRequesterPrincipal: "${aws:PrincipalArn}"},
			},
		}),
		// A queue's URL follows from its name (the run id).
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("FindRunQueues"),
			Actions:   jsii.Strings("sqs:GetQueueUrl"),
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
	if props.SqsAbacUnavailable != nil {
		// Where SQS has no ABAC, by the name pattern; the run queues' own
		// policies still deny every run but its own to this role.
		fallback := awsiam.NewPolicy(this, jsii.String("RunQueuesWithoutAbac"), &awsiam.PolicyProps{
			Roles: &[]awsiam.IRole{role},
			Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("ReadRunQueuesWithoutAbac"),
				Actions:   jsii.Strings(TriggerRunQueueReadActions...),
				Resources: &[]*string{props.RunQueueArn},
			})},
		})
		fallback.Node().DefaultChild().(awsiam.CfnPolicy).CfnOptions().SetCondition(props.SqsAbacUnavailable)
	}
	return &triggerRole{Construct: this, role: role}
}

// TriggerRunQueueReadActions are what deploy-trigger does on its run's
// queue besides GetQueueUrl.
var TriggerRunQueueReadActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

func (t *triggerRole) Role() awsiam.IRole { return t.role }
