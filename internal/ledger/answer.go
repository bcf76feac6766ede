package ledger

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

// The broker's answers to decisions (issue 25): approve, reject and the
// cancel command carry a decision id (a fresh ULID); the dispatcher writes
// what it made of the request to an item of the run ledger keyed
// AnswerKeyPrefix + decision id, which the deciding deploy-trigger reads
// with the same Query on the history index as `show` (the item's AttrHistory
// is AnswerHistoryValue, so it is in the index but never among the runs).
// No new permission and no new resource: whoever may read the history may
// read the answers (docs/ARCHITECTURE.md, trust boundaries). An answer
// expires AnswerRetention after it was written.
const (
	AnswerKeyPrefix    = "answer#"
	AnswerHistoryValue = "answer"
	AttrAnswerKind     = "decision_kind"    // approve, reject, cancel
	AttrAnswerRun      = "decision_run_id"  // the run decided
	AttrAnswerBy       = "decision_by"      // the verified principal of the request
	AttrAnswerOutcome  = "decision_outcome" // the dispatcher's audit decision
	AttrAnswerAt       = "decision_at"
	AnswerRetention    = 24 * time.Hour
)

// Answer is the dispatcher's answer to one decision request.
type Answer struct {
	DecisionID string
	Kind       string
	RunID      string
	By         string
	// Outcome is the audit decision (approved, disapproved, cancelled,
	// denied, ignored…) and Reason its reason.
	Outcome string
	Reason  string
	At      time.Time
}

// RecordAnswer writes the answer to a decision request, once: the first
// answer stays (a retry of the request by Lambda, after the decision was
// made, would otherwise replace "approved" with "decided meanwhile").
func (l *Store) RecordAnswer(ctx context.Context, a Answer) error {
	item := map[string]types.AttributeValue{
		AttrRunID: s(AnswerKeyPrefix + a.DecisionID), AttrHistory: s(AnswerHistoryValue),
		AttrAnswerKind: s(a.Kind), AttrAnswerRun: s(a.RunID), AttrAnswerBy: s(a.By),
		AttrAnswerOutcome: s(a.Outcome), AttrReason: s(a.Reason), AttrAnswerAt: s(Stamp(a.At)),
		AttrExpiresAt: &types.AttributeValueMemberN{Value: strconv.FormatInt(a.At.Add(AnswerRetention).Unix(), 10)},
	}
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item,
		ConditionExpression: aws.String("attribute_not_exists(" + AttrRunID + ")")})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording the answer to %s %s of run %s: %w", a.Kind, a.DecisionID, a.RunID, err)
	}
	return nil
}

// AnswerQuery is the Query of table's history index for the answer to
// decision decisionID.
func AnswerQuery(table, decisionID string) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName: aws.String(table), IndexName: aws.String(HistoryIndex),
		KeyConditionExpression:    aws.String("#h = :h AND #id = :id"),
		ExpressionAttributeNames:  map[string]string{"#h": AttrHistory, "#id": AttrRunID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": s(AnswerHistoryValue), ":id": s(AnswerKeyPrefix + decisionID)},
	}
}

// DecodeAnswer reads an answer's item.
func DecodeAnswer(a map[string]types.AttributeValue) Answer {
	str := func(k string) string {
		if v, ok := a[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	at, _ := time.Parse(time.RFC3339Nano, str(AttrAnswerAt))
	id := str(AttrRunID)
	if len(id) > len(AnswerKeyPrefix) {
		id = id[len(AnswerKeyPrefix):]
	}
	return Answer{DecisionID: id, Kind: str(AttrAnswerKind), RunID: str(AttrAnswerRun), By: str(AttrAnswerBy),
		Outcome: str(AttrAnswerOutcome), Reason: str(AttrReason), At: at}
}
