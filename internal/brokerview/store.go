package brokerview

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is the view's DynamoDB item: its key and its JSON.
func Item(doc []byte) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		KeyAttr: &types.AttributeValueMemberS{Value: KeyValue},
		DocAttr: &types.AttributeValueMemberS{Value: string(doc)},
	}
}

// TableInput is the view table as the stack creates it (local mode creates
// it with this): on demand, one string key.
func TableInput(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(KeyAttr), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(KeyAttr), KeyType: types.KeyTypeHash}},
	}
}

// PutAPI and GetAPI are the slices of DynamoDB the writer and reader use.
type (
	PutAPI interface {
		PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	}
	GetAPI interface {
		GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	}
)

// Put writes the view (local mode; the stack writes the same item through
// CloudFormation).
func Put(ctx context.Context, db PutAPI, table string, v View) error {
	doc, err := Encode(v)
	if err != nil {
		return err
	}
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: Item(doc)})
	return err
}

// ErrNotPublished says the table holds no view.
var ErrNotPublished = errors.New("the broker publishes no view")

// Get reads the view with one strongly consistent GetItem of its key, the
// one call its readers are granted. table may be the table's ARN (another
// account's table).
func Get(ctx context.Context, db GetAPI, table string) (*View, error) {
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{KeyAttr: &types.AttributeValueMemberS{Value: KeyValue}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, ErrNotPublished
	}
	doc, ok := out.Item[DocAttr].(*types.AttributeValueMemberS)
	if !ok {
		return nil, fmt.Errorf("the broker's published view has no %s string", DocAttr)
	}
	return Decode([]byte(doc.Value))
}
