package brokerview

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Run pointers (issue 26): a run's queue is not always named after the run
// (the dispatcher may give it a spare queue made ahead of time), so the
// dispatcher writes, in the view table, an item under RunKey(runID)
// holding the queue's URL (QueueAttr), with a TTL (TTLAttr, epoch
// seconds). deploy-trigger reads it with GetItem, as it reads the view.
// The key's prefix is what the stack's grants name (dynamodb:LeadingKeys
// RunKeyPattern): readers get GetItem on it, the dispatcher PutItem, and
// nobody else any write. The URL is no secret: a run queue's policy, not
// its name, keeps others out.
const (
	RunKeyPrefix  = "run#"
	RunKeyPattern = RunKeyPrefix + "*"
	QueueAttr     = "queue_url"
	TTLAttr       = "expires_at"
)

// RunKey is the key of a run's pointer.
func RunKey(runID string) string { return RunKeyPrefix + runID }

// PutRunPointer writes runID's pointer to its queue, expiring at expires.
func PutRunPointer(ctx context.Context, db PutAPI, table, runID, queueURL string, expires time.Time) error {
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			KeyAttr:   &types.AttributeValueMemberS{Value: RunKey(runID)},
			QueueAttr: &types.AttributeValueMemberS{Value: queueURL},
			TTLAttr:   &types.AttributeValueMemberN{Value: strconv.FormatInt(expires.Unix(), 10)},
		},
	})
	if err != nil {
		return fmt.Errorf("writing the run pointer of %s to the view table: %w", runID, err)
	}
	return nil
}

// maxQueueURL bounds a pointer's URL (an SQS queue URL is well under 200
// characters).
const maxQueueURL = 512

// GetRunPointer reads runID's pointer with one strongly consistent
// GetItem; ok is false when there is none (yet). A pointer that is not an
// https or http URL of a queue is refused.
func GetRunPointer(ctx context.Context, db GetAPI, table, runID string) (string, bool, error) {
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{KeyAttr: &types.AttributeValueMemberS{Value: RunKey(runID)}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", false, err
	}
	if len(out.Item) == 0 {
		return "", false, nil
	}
	v, ok := out.Item[QueueAttr].(*types.AttributeValueMemberS)
	if !ok || len(v.Value) > maxQueueURL || !(strings.HasPrefix(v.Value, "https://") || strings.HasPrefix(v.Value, "http://")) {
		return "", false, fmt.Errorf("the run pointer of %s in the view table holds no queue URL", runID)
	}
	return v.Value, true, nil
}
