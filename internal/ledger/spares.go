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

// Spare run queues (issue 26): a run queue made ahead of time for one
// access (a requester and session pattern: the run queue policy the
// dispatcher would write for it), so that a run of that requester finds
// its queue ready and no CreateQueue sits between publish and the first
// line. Two kinds of items:
//
//   - SparePrefix + access key: the key's spare, if any (AttrSpareID,
//     AttrQueueURL). Taking it is one conditional update that removes them
//     and returns them (TakeSpare): of two runs, one gets the queue.
//   - QueuePrefix + queue id: who a spare-named queue belongs to. Made
//     before the queue (RecordSpare), marked with the run that took it
//     (ClaimQueue) or retired by the sweep (RetireSpare), each a
//     conditional update, so that the sweep never deletes a queue a run
//     took and a run never takes a queue the sweep is deleting. The sweep
//     reads it (QueueOwner) to tie a queue to its run: the run's own
//     queue_url is authoritative, and this is its reverse.
const (
	SparePrefix    = "spare#"
	QueuePrefix    = "queue#"
	AttrSpareID    = "spare_id"   // the spare's queue id (a run id's format)
	AttrAccessKey  = "access_key" // the access key a spare queue was made for
	AttrTakenBy    = "taken_by"   // the run that took a spare queue
	AttrRetiredAt  = "retired_at" // the sweep retired an idle spare queue
	spareStatus    = "spare"      // the status attribute of a spare item
	queueStatus    = "spare_queue"
	spareItemsLife = 8 * 24 * time.Hour // an unclaimed queue item's TTL; the sweep retires idle spares after 7 days
)

// QueueRecord is what the ledger knows of a spare-named queue.
type QueueRecord struct {
	AccessKey string
	CreatedAt time.Time
	TakenBy   string // the run that took it; "" while it is a spare
	Retired   bool
}

func epoch(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}

func key(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrRunID: s(k)}
}

// RecordSpare records a spare queue about to be made for access key at
// now: before CreateQueue, so that no spare-named queue is ever unknown to
// the sweep for longer than a crash.
func (l *Store) RecordSpare(ctx context.Context, queueID, accessKey string, now time.Time) error {
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.table),
		Item: map[string]types.AttributeValue{
			AttrRunID: s(QueuePrefix + queueID), AttrStatus: s(queueStatus), AttrAccessKey: s(accessKey),
			AttrCreatedAt: s(Stamp(now)), AttrExpiresAt: epoch(now.Add(spareItemsLife)),
		},
		ConditionExpression: aws.String("attribute_not_exists(" + AttrRunID + ")"),
	})
	if err != nil {
		return fmt.Errorf("recording spare queue %s in the ledger: %w", queueID, err)
	}
	return nil
}

// OfferSpare makes queueID (at url) the spare of accessKey, only if the key
// has none: ErrConditionFailed when another invocation offered one first.
func (l *Store) OfferSpare(ctx context.Context, accessKey, queueID, url string) error {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      key(SparePrefix + accessKey),
		UpdateExpression:         aws.String("SET #id = :id, #url = :url, #st = :st"),
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": AttrSpareID, "#url": AttrQueueURL, "#st": AttrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":id": s(queueID), ":url": s(url), ":st": s(spareStatus),
		},
	})
	return spareErr(err, "offering spare queue "+queueID)
}

// HasSpare reports whether accessKey has a spare.
func (l *Store) HasSpare(ctx context.Context, accessKey string) (bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table), Key: key(SparePrefix + accessKey), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false, fmt.Errorf("reading the spare queue of an access from the ledger: %w", err)
	}
	_, ok := out.Item[AttrSpareID]
	return ok, nil
}

// TakeSpare takes accessKey's spare: one update that removes it and returns
// what it was, so that of any number of callers exactly one gets it. ok is
// false when the key has no spare.
func (l *Store) TakeSpare(ctx context.Context, accessKey string) (queueID, url string, ok bool, err error) {
	out, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      key(SparePrefix + accessKey),
		UpdateExpression:         aws.String("REMOVE #id, #url"),
		ConditionExpression:      aws.String("attribute_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": AttrSpareID, "#url": AttrQueueURL},
		ReturnValues:             types.ReturnValueUpdatedOld,
	})
	if err = spareErr(err, "taking a spare queue"); errors.Is(err, ErrConditionFailed) {
		return "", "", false, nil
	} else if err != nil {
		return "", "", false, err
	}
	it := Decode(out.Attributes)
	id, _ := out.Attributes[AttrSpareID].(*types.AttributeValueMemberS)
	if id == nil || it.QueueURL == "" {
		return "", "", false, nil
	}
	return id.Value, it.QueueURL, true, nil
}

// ClaimQueue marks the spare queue queueID as runID's, only if it is a
// recorded spare queue that no other run took and the sweep did not
// retire (ErrConditionFailed otherwise). It is idempotent for runID. The
// item then expires with the run's.
func (l *Store) ClaimQueue(ctx context.Context, queueID, runID string, now time.Time) error {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      key(QueuePrefix + queueID),
		UpdateExpression:         aws.String("SET #by = :run, #exp = :exp"),
		ConditionExpression:      aws.String("attribute_exists(#pk) AND attribute_not_exists(#ret) AND (attribute_not_exists(#by) OR #by = :run)"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrRunID, "#by": AttrTakenBy, "#ret": AttrRetiredAt, "#exp": AttrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":run": s(runID), ":exp": epoch(now.Add(l.retention)),
		},
	})
	return spareErr(err, "claiming spare queue "+queueID+" for run "+runID)
}

// UnclaimQueue gives back a spare queue runID claimed but did not use.
func (l *Store) UnclaimQueue(ctx context.Context, queueID, runID string) error {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(QueuePrefix + queueID),
		UpdateExpression:          aws.String("REMOVE #by"),
		ConditionExpression:       aws.String("#by = :run"),
		ExpressionAttributeNames:  map[string]string{"#by": AttrTakenBy},
		ExpressionAttributeValues: map[string]types.AttributeValue{":run": s(runID)},
	})
	return spareErr(err, "giving back spare queue "+queueID)
}

// RetireSpare marks a spare queue retired so that no run can claim it any
// more, only if no run took it (ErrConditionFailed otherwise), and removes
// it from its key's spare if it is still offered there. The caller then
// deletes the queue.
func (l *Store) RetireSpare(ctx context.Context, queueID string, now time.Time) error {
	out, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(QueuePrefix + queueID),
		UpdateExpression:          aws.String("SET #ret = :now"),
		ConditionExpression:       aws.String("attribute_exists(#pk) AND attribute_not_exists(#by)"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrRunID, "#by": AttrTakenBy, "#ret": AttrRetiredAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": s(Stamp(now))},
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err := spareErr(err, "retiring spare queue "+queueID); err != nil {
		return err
	}
	k, _ := out.Attributes[AttrAccessKey].(*types.AttributeValueMemberS)
	if k == nil {
		return nil
	}
	_, err = l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(SparePrefix + k.Value),
		UpdateExpression:          aws.String("REMOVE #id, #url"),
		ConditionExpression:       aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": AttrSpareID, "#url": AttrQueueURL},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": s(queueID)},
	})
	if err := spareErr(err, "withdrawing spare queue "+queueID); err != nil && !errors.Is(err, ErrConditionFailed) {
		return err
	}
	return nil
}

// QueueOwner reads what the ledger knows of the spare-named queue queueID;
// ok is false for a queue it has no record of (a run-named queue).
func (l *Store) QueueOwner(ctx context.Context, queueID string) (QueueRecord, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table), Key: key(QueuePrefix + queueID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return QueueRecord{}, false, fmt.Errorf("reading queue %s from the ledger: %w", queueID, err)
	}
	if len(out.Item) == 0 {
		return QueueRecord{}, false, nil
	}
	str := func(k string) string {
		v, _ := out.Item[k].(*types.AttributeValueMemberS)
		if v == nil {
			return ""
		}
		return v.Value
	}
	created, _ := time.Parse(time.RFC3339Nano, str(AttrCreatedAt))
	return QueueRecord{AccessKey: str(AttrAccessKey), CreatedAt: created, TakenBy: str(AttrTakenBy), Retired: str(AttrRetiredAt) != ""}, true, nil
}

// SetQueue records url as runID's queue unless the run has a queue
// already (other than replacing, when given: a spare the sweep retired
// before the run used it); it returns the run's queue (url, or the one it
// had). The run's queue_url is authoritative: the trigger's run pointer, a
// retried launch, the ECS events and the sweep all follow it.
func (l *Store) SetQueue(ctx context.Context, runID, url, replacing string) (string, error) {
	cond := "attribute_exists(#pk) AND (attribute_not_exists(#q) OR #q = :q)"
	values := map[string]types.AttributeValue{":q": s(url)}
	if replacing != "" {
		cond = "attribute_exists(#pk) AND (attribute_not_exists(#q) OR #q = :q OR #q = :old)"
		values[":old"] = s(replacing)
	}
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(runID),
		UpdateExpression:          aws.String("SET #q = :q"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrRunID, "#q": AttrQueueURL},
		ExpressionAttributeValues: values,
	})
	if err = spareErr(err, "recording the queue of run "+runID); !errors.Is(err, ErrConditionFailed) {
		return url, err
	}
	it, ok, gerr := l.Get(ctx, runID)
	if gerr != nil {
		return "", gerr
	}
	if !ok || it.QueueURL == "" {
		return "", fmt.Errorf("run %s is not in the ledger; cannot record its queue", runID)
	}
	return it.QueueURL, nil
}

// spareErr maps a failed condition to ErrConditionFailed and wraps others.
func spareErr(err error, what string) error {
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ccf):
		return ErrConditionFailed
	default:
		return fmt.Errorf("%s in the ledger: %w", what, err)
	}
}
