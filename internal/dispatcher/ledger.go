package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Run statuses kept in the ledger.
const (
	StatusLaunching = "launching" // claimed; the task is being started
	StatusRejected  = "rejected"  // refused; nothing was launched
	StatusAccepted  = "accepted"  // RunTask succeeded
	StatusStopped   = "stopped"   // ECS reported the task STOPPED
	StatusAbandoned = "abandoned" // the sweep found it without an end
)

// ledgerItem is one run in the ledger, keyed by run id.
type ledgerItem struct {
	RunID       string
	Status      string
	Job         string
	Params      map[string]string // secret values redacted
	Requester   string
	RequestHash string
	RequestedAt time.Time
	CreatedAt   time.Time
	EndedAt     time.Time
	TaskARN     string
	QueueURL    string
	Reason      string
}

// ledger is the DynamoDB run ledger.
type ledger struct {
	db        DynamoAPI
	table     string
	retention time.Duration
}

var errAlreadyClaimed = errors.New("run id already claimed")

// claim creates the run's item only if the run id is new.
func (l *ledger) claim(ctx context.Context, it ledgerItem) error {
	item := map[string]types.AttributeValue{
		"run_id":       s(it.RunID),
		"status":       s(it.Status),
		"job":          s(it.Job),
		"requester":    s(it.Requester),
		"request_hash": s(it.RequestHash),
		"requested_at": s(it.RequestedAt.UTC().Format(time.RFC3339Nano)),
		"created_at":   s(it.CreatedAt.UTC().Format(time.RFC3339Nano)),
		"expires_at":   &types.AttributeValueMemberN{Value: strconv.FormatInt(it.CreatedAt.Add(l.retention).Unix(), 10)},
	}
	if it.Reason != "" {
		item["reason"] = s(it.Reason)
	}
	if it.QueueURL != "" {
		item["queue_url"] = s(it.QueueURL)
	}
	if len(it.Params) > 0 {
		m := map[string]types.AttributeValue{}
		for k, v := range it.Params {
			m[k] = s(v)
		}
		item["params"] = &types.AttributeValueMemberM{Value: m}
	}
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(l.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(run_id)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return errAlreadyClaimed
	}
	if err != nil {
		return fmt.Errorf("claiming run %s in the ledger: %w", it.RunID, err)
	}
	return nil
}

// get reads a run's item; ok is false when there is none.
func (l *ledger) get(ctx context.Context, runID string) (ledgerItem, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		Key:            map[string]types.AttributeValue{"run_id": s(runID)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return ledgerItem{}, false, fmt.Errorf("reading run %s from the ledger: %w", runID, err)
	}
	if out.Item == nil {
		return ledgerItem{}, false, nil
	}
	return itemFromAttrs(out.Item), true, nil
}

func itemFromAttrs(a map[string]types.AttributeValue) ledgerItem {
	str := func(k string) string {
		if v, ok := a[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	tm := func(k string) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, str(k))
		return t
	}
	return ledgerItem{
		RunID: str("run_id"), Status: str("status"), Job: str("job"), Requester: str("requester"),
		RequestHash: str("request_hash"), RequestedAt: tm("requested_at"), CreatedAt: tm("created_at"),
		EndedAt: tm("ended_at"), TaskARN: str("task_arn"), QueueURL: str("queue_url"), Reason: str("reason"),
	}
}

// update sets attributes of an existing item.
func (l *ledger) update(ctx context.Context, runID string, set map[string]string) error {
	expr := "SET "
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	i := 0
	for k, v := range set {
		if i > 0 {
			expr += ", "
		}
		expr += fmt.Sprintf("#k%d = :v%d", i, i)
		names[fmt.Sprintf("#k%d", i)] = k
		values[fmt.Sprintf(":v%d", i)] = s(v)
		i++
	}
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{"run_id": s(runID)},
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ConditionExpression:       aws.String("attribute_exists(run_id)"),
	})
	if err != nil {
		return fmt.Errorf("updating run %s in the ledger: %w", runID, err)
	}
	return nil
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
