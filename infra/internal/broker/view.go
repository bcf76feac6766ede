package broker

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/customresources"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
)

// PublishedViewProps configures the broker's published view.
type PublishedViewProps struct {
	Config       *config.Config
	Ledger       awsdynamodb.ITable
	RunLogs      awslogs.ILogGroup
	ReaderRole   awsiam.IRole // nil without viewers
	TriggerRole  awsiam.IRole // nil without github_oidc
	LogRetention awslogs.RetentionDays
}

// PublishedView is what deploy-trigger reads to need nothing but the topic
// (issue 25, internal/brokerview): a table named after the broker, holding
// the view, written at deploy time from the configuration, and the run
// pointers the dispatcher writes (issue 26: run#<run id> → the run's queue
// URL, expiring by the table's TTL attribute).
//
// Its resource policy lets the broker's trusted principals, its viewers, the
// reader role and the GitHub trigger role dynamodb:GetItem the view's key,
// and the trusted principals and the GitHub trigger role (who request runs)
// GetItem the run pointers' keys, nothing else: no other action, no other
// item (dynamodb:LeadingKeys), no other table. A principal of another
// account needs GetItem on the table in its own IAM policy too
// (docs/INFRA.md). Nobody but the broker's own roles (the dispatcher) and
// the view's writer may write an item (OnlyTheBrokerWritesTheView: a
// job's role with dynamodb:* of its own would otherwise point a trigger
// at a queue of its making); and every job role is denied dynamodb:* on the
// table, its policy included (the job guard's NeverTouchTheView), or it
// could delete that Deny first. The writer is a CloudFormation custom
// resource whose role may PutItem the view's key in that table only.
type PublishedView interface {
	constructs.Construct
	Table() awsdynamodb.ITable
	Writer() customresources.AwsCustomResource
	WriterRole() awsiam.IRole
}

type publishedView struct {
	constructs.Construct
	table  awsdynamodb.Table
	writer customresources.AwsCustomResource
	role   awsiam.Role
}

// The resource policy's statements: the view's readers, the run
// pointers' readers, the Deny of writes by anyone else.
const (
	viewReadersSid    = "TrustedPrincipalsReadTheView"
	pointerReadersSid = "TrustedPrincipalsReadRunPointers"
	viewWritersSid    = "OnlyTheBrokerWritesTheView"
)

// ViewItemWriteActions are the item writes of the view table that only the
// broker's roles and the view's writer may make.
var ViewItemWriteActions = []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
	"dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"}

// RunPointerKeys is the condition of the run pointers' grants: every key
// the request names is a run pointer's.
func RunPointerKeys() map[string]interface{} {
	return map[string]interface{}{
		"ForAllValues:StringLike": map[string]interface{}{"dynamodb:LeadingKeys": []string{brokerview.RunKeyPattern}},
	}
}

// NewPublishedView creates the view's table and writes the view.
func NewPublishedView(scope constructs.Construct, id string, props *PublishedViewProps) (PublishedView, error) {
	this := constructs.NewConstruct(scope, &id)
	cfg := props.Config
	name := brokerview.TableName(cfg.Broker.Name)
	tableArn := viewTableArn(cfg.Broker.Name)
	onlyTheView := map[string]interface{}{
		"ForAllValues:StringEquals": map[string]interface{}{"dynamodb:LeadingKeys": []string{brokerview.KeyValue}},
	}

	var readers []string
	seen := map[string]bool{}
	for _, p := range append(append([]string{}, cfg.TrustedPrincipals...), cfg.ViewerPrincipals()...) {
		if !seen[p] {
			seen[p] = true
			readers = append(readers, p)
		}
	}
	principals := ciPrincipals(readers)
	requesters := ciPrincipals(cfg.TrustedPrincipals) // who requests runs, and so follows run pointers
	loc := brokerview.Locations{LedgerTable: *props.Ledger.TableName(), RunLogGroup: *props.RunLogs.LogGroupName()}
	if props.TriggerRole != nil {
		principals = append(principals, awsiam.NewArnPrincipal(props.TriggerRole.RoleArn()))
		requesters = append(requesters, awsiam.NewArnPrincipal(props.TriggerRole.RoleArn()))
		loc.ExtraTrusted = []string{*props.TriggerRole.RoleArn()}
	}
	if props.ReaderRole != nil {
		// A viewer that assumed the reader role first (--role-arn) reads
		// the view with it.
		principals = append(principals, awsiam.NewArnPrincipal(props.ReaderRole.RoleArn()))
		loc.ReaderRoleARN = *props.ReaderRole.RoleArn()
	}
	pointerKeys := RunPointerKeys()
	// The writer's role, made before the table so that the table's Deny
	// can name it.
	writerRole := awsiam.NewRole(this, jsii.String("WriterRole"), &awsiam.RoleProps{
		Description: jsii.String("deploy-broker published view writer: put the view item, write its own log"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"logs": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
				awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Sid:       jsii.String("WriteOwnLog"),
					Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
					Resources: &[]*string{arn("logs", "log-group:"+ViewWriterLogGroupName(cfg.Broker.Name)+":*")},
				}),
			}}),
		},
	})
	// The broker's own roles (the dispatcher's, under config.RolePath) and
	// the view's writer: the only principals that may write an item.
	brokerRoles := "arn:" + *awscdk.Aws_PARTITION() + ":iam::" + *awscdk.Aws_ACCOUNT_ID() + ":role" + config.RolePath(cfg.Broker.Name) + "*"
	notTheBroker := map[string]interface{}{
		"ArnNotLike": map[string]interface{}{"aws:PrincipalArn": []interface{}{brokerRoles, writerRole.RoleArn()}},
	}
	policy := awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(viewReadersSid),
			Principals: &principals,
			Actions:    jsii.Strings("dynamodb:GetItem"),
			Resources:  &[]*string{tableArn},
			Conditions: &onlyTheView,
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(pointerReadersSid),
			Principals: &requesters,
			Actions:    jsii.Strings("dynamodb:GetItem"),
			Resources:  &[]*string{tableArn},
			Conditions: &pointerKeys,
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String(viewWritersSid),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings(ViewItemWriteActions...),
			Resources:  &[]*string{tableArn},
			Conditions: &notTheBroker,
		}),
	}})
	table := awsdynamodb.NewTable(this, jsii.String("Table"), &awsdynamodb.TableProps{
		TableName:    jsii.String(name),
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(brokerview.KeyAttr), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption: awsdynamodb.TableEncryption_AWS_MANAGED,
		// Run pointers expire (the view item has no such attribute).
		TimeToLiveAttribute: jsii.String(brokerview.TTLAttr),
		// Derived from the configuration, rewritten by every deployment.
		RemovalPolicy:  awscdk.RemovalPolicy_DESTROY,
		ResourcePolicy: policy,
	})

	// The view, built from the configuration with the stack's names as
	// tokens, which CloudFormation resolves inside the JSON.
	doc, err := brokerview.Encode(brokerview.Build(cfg, loc))
	if err != nil {
		return nil, err
	}
	put := &customresources.AwsSdkCall{
		Service: jsii.String("DynamoDB"),
		Action:  jsii.String("PutItem"),
		Parameters: map[string]interface{}{
			"TableName": table.TableName(),
			"Item": map[string]interface{}{
				brokerview.KeyAttr: map[string]interface{}{"S": brokerview.KeyValue},
				brokerview.DocAttr: map[string]interface{}{"S": string(doc)},
			},
		},
		PhysicalResourceId: customresources.PhysicalResourceId_Of(jsii.String(name + "/" + brokerview.KeyValue)),
	}
	// The writer's own role and log group: no AWS managed policy, its log
	// written to this group only.
	writerLogs := awslogs.NewLogGroup(this, jsii.String("WriterLogs"), &awslogs.LogGroupProps{
		LogGroupName: jsii.String(ViewWriterLogGroupName(cfg.Broker.Name)),
		Retention:    props.LogRetention, RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	writer := customresources.NewAwsCustomResource(this, jsii.String("Writer"), &customresources.AwsCustomResourceProps{
		OnCreate:            put,
		OnUpdate:            put,
		InstallLatestAwsSdk: jsii.Bool(false), // no download at deploy time: the runtime's SDK
		LogGroup:            writerLogs,
		Role:                writerRole,
		Policy: customresources.AwsCustomResourcePolicy_FromStatements(&[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("WriteTheView"),
				Actions:    jsii.Strings("dynamodb:PutItem"),
				Resources:  &[]*string{table.TableArn()},
				Conditions: &onlyTheView,
			}),
		}),
	})
	if writer == nil {
		return nil, fmt.Errorf("creating the published view's writer")
	}
	return &publishedView{Construct: this, table: table, writer: writer, role: writerRole}, nil
}

// viewTableArn is the view table's ARN, by its fixed name: the job guard
// (NeverTouchTheView) names it before the table is made.
func viewTableArn(broker string) *string {
	return arn("dynamodb", "table/"+brokerview.TableName(broker))
}

// ViewWriterLogGroupName is the log group of the view's writer.
func ViewWriterLogGroupName(broker string) string { return "/deploy-broker/" + broker + "/view-writer" }

func (v *publishedView) Table() awsdynamodb.ITable                 { return v.table }
func (v *publishedView) Writer() customresources.AwsCustomResource { return v.writer }

func (v *publishedView) WriterRole() awsiam.IRole { return v.role }
