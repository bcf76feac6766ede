package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// LedgerProps configures the run ledger.
type LedgerProps struct {
	// RemovalPolicy defaults to RETAIN: the ledger is the audit trail.
	RemovalPolicy awscdk.RemovalPolicy
}

// Ledger is the run ledger: one item per run id, written only by the
// dispatcher, expired by DynamoDB TTL after the configured retention.
type Ledger interface {
	constructs.Construct
	Table() awsdynamodb.ITable
}

type ledgerTable struct {
	constructs.Construct
	table awsdynamodb.Table
}

// NewLedger creates the table: on-demand, point-in-time recovery, encrypted
// with the AWS managed DynamoDB key, TTL on expires_at.
func NewLedger(scope constructs.Construct, id string, props *LedgerProps) Ledger {
	this := constructs.NewConstruct(scope, &id)
	removal := props.RemovalPolicy
	if removal == "" {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	table := awsdynamodb.NewTable(this, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(ledger.AttrRunID), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		TimeToLiveAttribute: jsii.String(ledger.AttrExpiresAt),
		RemovalPolicy:       removal,
	})
	// The history index (internal/ledger/names.go): deploy-trigger runs and show
	// Query it, newest run id first; readers get dynamodb:Query on it only.
	table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String(ledger.HistoryIndex),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(ledger.AttrHistory), Type: awsdynamodb.AttributeType_STRING},
		SortKey:        &awsdynamodb.Attribute{Name: jsii.String(ledger.AttrRunID), Type: awsdynamodb.AttributeType_STRING},
		ProjectionType: awsdynamodb.ProjectionType_ALL,
	})
	return &ledgerTable{Construct: this, table: table}
}

func (l *ledgerTable) Table() awsdynamodb.ITable { return l.table }
