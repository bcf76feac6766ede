package ledger

import (
	"bytes"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"
)

// Reading the history index (HistoryIndex): `deploy-trigger runs`, `show`,
// `logs` and `attach` Query it and decode each item with Decode.

// runIDBound is the smallest (or, with high, the largest) run id of time t.
func runIDBound(t time.Time, high bool) string {
	fill := byte(0)
	if high {
		fill = 0xff
	}
	return ulid.MustNew(ulid.Timestamp(t), bytes.NewReader(bytes.Repeat([]byte{fill}, 10))).String()
}

// Filter narrows a history range on the server (a FilterExpression).
type Filter struct {
	Job       string // only runs of this job
	Key       string // only runs started with this idempotency key
	Requester string // only runs whose verified principal or claimed requester contains this
}

// RangeQuery is the Query of table's history index for the runs between from
// and to (by run id time), newest first, that pass f.
func RangeQuery(table string, from, to time.Time, f Filter) *dynamodb.QueryInput {
	names := map[string]string{"#h": AttrHistory, "#id": AttrRunID}
	values := map[string]types.AttributeValue{":h": s(HistoryValue), ":lo": s(runIDBound(from, false)), ":hi": s(runIDBound(to, true))}
	var filters []string
	if f.Job != "" {
		names["#job"], values[":job"] = AttrJob, s(f.Job)
		filters = append(filters, "#job = :job")
	}
	if f.Key != "" {
		names["#key"], values[":key"] = AttrIdempotencyKey, s(f.Key)
		filters = append(filters, "#key = :key")
	}
	if f.Requester != "" {
		names["#req"], names["#rby"] = AttrRequester, AttrRequestedBy
		values[":req"] = s(f.Requester)
		filters = append(filters, "(contains(#rby, :req) OR contains(#req, :req))")
	}
	in := &dynamodb.QueryInput{
		TableName: aws.String(table), IndexName: aws.String(HistoryIndex),
		KeyConditionExpression:    aws.String("#h = :h AND #id BETWEEN :lo AND :hi"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	return in
}

// RunQuery is the Query of table's history index for one run.
func RunQuery(table, runID string) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName: aws.String(table), IndexName: aws.String(HistoryIndex),
		KeyConditionExpression:    aws.String("#h = :h AND #id = :id"),
		ExpressionAttributeNames:  map[string]string{"#h": AttrHistory, "#id": AttrRunID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": s(HistoryValue), ":id": s(runID)},
	}
}

// TableInput creates the run ledger's table as the stack does
// (infra/internal/broker/ledger.go): partition key AttrRunID, the history
// index. Local mode and tests create it with this; TTL is the stack's
// (AttrExpiresAt), which moto does not enforce.
func TableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrRunID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrHistory), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(AttrRunID), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(HistoryIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrHistory), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrRunID), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}
}
