package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// ReaderRoleProps configures the run reader role.
type ReaderRoleProps struct {
	// Viewers are the catalogue's viewers (role/user ARNs or account ids):
	// the principals that may assume the role.
	Viewers  []string
	Ledger   awsdynamodb.ITable
	RunLogs  awslogs.ILogGroup
	MaxHours float64 // session length; zero means one hour
}

// ReaderRole is the role the catalogue's viewers assume to read past runs
// (issue 17): dynamodb:Query on the ledger's history index and reading the
// run log group, nothing else. Neither DynamoDB's index reads nor CloudWatch
// Logs reads can be granted to another account by a resource policy, so a
// reader in the CI account assumes this role in the target account, as the
// GitHub trigger role is assumed for runs.
type ReaderRole interface {
	constructs.Construct
	Role() awsiam.IRole
}

type readerRole struct {
	constructs.Construct
	role awsiam.Role
}

// historyIndexArn is the ARN of the ledger's history index.
func historyIndexArn(table awsdynamodb.ITable) *string {
	return jsii.String(*table.TableArn() + "/index/" + ledger.HistoryIndex)
}

// NewReaderRole creates the role.
func NewReaderRole(scope constructs.Construct, id string, props *ReaderRoleProps) ReaderRole {
	this := constructs.NewConstruct(scope, &id)
	statements := []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("QueryRunHistory"),
			Actions:   jsii.Strings("dynamodb:Query"),
			Resources: &[]*string{historyIndexArn(props.Ledger)},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadRunLogs"),
			Actions:   jsii.Strings("logs:GetLogEvents", "logs:FilterLogEvents"),
			Resources: &[]*string{props.RunLogs.LogGroupArn()},
		}),
	}
	hours := props.MaxHours
	if hours == 0 {
		hours = 1
	}
	principals := ciPrincipals(props.Viewers)
	role := awsiam.NewRole(this, jsii.String("Role"), &awsiam.RoleProps{
		Description:        jsii.String("deploy-broker run reader: query the run history index, read run logs"),
		AssumedBy:          awsiam.NewCompositePrincipal(principals...),
		MaxSessionDuration: awscdk.Duration_Hours(jsii.Number(hours)),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"reader": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements}),
		},
	})
	return &readerRole{Construct: this, role: role}
}

func (r *readerRole) Role() awsiam.IRole { return r.role }
