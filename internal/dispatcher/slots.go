package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The ledger's versioned items, which are not runs: a group's concurrency
// slots ("slot#<group>", concurrency.go) and a principal's open runs
// ("principal#<arn>", throttle.go). Each change reads the item with its
// version and writes it back only at that version (compare-and-set).

type slotState struct {
	exists  bool
	version int64
	holders map[string]string // run id → since (stamp)
	waiting []string
}

func slotKey(group string) string { return protocol.SlotKeyPrefix + group }

func (l *ledger) getSlot(ctx context.Context, group string) (slotState, error) {
	item, version, err := l.getVersioned(ctx, slotKey(group), protocol.LedgerSlotVersion)
	if err != nil {
		return slotState{}, fmt.Errorf("reading concurrency slots %s: %w", group, err)
	}
	st := slotState{exists: item != nil, version: version, holders: map[string]string{}}
	if m, ok := item[protocol.LedgerSlotHolders].(*types.AttributeValueMemberM); ok {
		for k, v := range m.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				st.holders[k] = sv.Value
			}
		}
	}
	if l, ok := item[protocol.LedgerSlotWaiting].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				st.waiting = append(st.waiting, sv.Value)
			}
		}
	}
	return st, nil
}

// putSlot writes st if the item is still at the version it was read at.
func (l *ledger) putSlot(ctx context.Context, group string, read, st slotState) error {
	holders := map[string]types.AttributeValue{}
	for k, v := range st.holders {
		holders[k] = s(v)
	}
	waiting := make([]types.AttributeValue, 0, len(st.waiting))
	for _, w := range st.waiting {
		waiting = append(waiting, s(w))
	}
	item := map[string]types.AttributeValue{
		protocol.LedgerRunID:       s(slotKey(group)),
		protocol.LedgerStatus:      s("slots"),
		protocol.LedgerSlotHolders: &types.AttributeValueMemberM{Value: holders},
		protocol.LedgerSlotWaiting: &types.AttributeValueMemberL{Value: waiting},
	}
	if err := l.putVersioned(ctx, item, protocol.LedgerSlotVersion, read.exists, read.version); err != nil {
		if errors.Is(err, errConditionFailed) {
			return err
		}
		return fmt.Errorf("writing concurrency slots %s: %w", group, err)
	}
	return nil
}

// getVersioned reads a ledger item that is not a run (concurrency slots, a
// principal's open runs) with its version (versionAttr); a nil item when
// there is none.
func (l *ledger) getVersioned(ctx context.Context, key, versionAttr string) (map[string]types.AttributeValue, int64, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{protocol.LedgerRunID: s(key)},
	})
	if err != nil {
		return nil, 0, err
	}
	var version int64
	if v, ok := out.Item[versionAttr].(*types.AttributeValueMemberN); ok {
		version, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	return out.Item, version, nil
}

// putVersioned writes item (a ledger item that is not a run: concurrency
// slots, a principal's open runs) if it is still at the version it was read
// at (versionAttr; absent when !exists), with the version one higher;
// errConditionFailed when someone wrote it in between.
func (l *ledger) putVersioned(ctx context.Context, item map[string]types.AttributeValue, versionAttr string, exists bool, version int64) error {
	item[versionAttr] = &types.AttributeValueMemberN{Value: strconv.FormatInt(version+1, 10)}
	in := &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item}
	if exists {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": versionAttr}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(" + protocol.LedgerRunID + ")")
	}
	// A token of this write: when its answer is lost and the SDK's repeat
	// fails the condition on it, the write is known as ours (the change it
	// computed, e.g. which waiters it superseded, still stands).
	token := newToken()
	item[protocol.LedgerWriteToken] = s(token)
	_, err := l.db.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, _, gerr := l.getVersioned(ctx, item[protocol.LedgerRunID].(*types.AttributeValueMemberS).Value, versionAttr)
		if gerr != nil {
			return gerr
		}
		if t, ok := cur[protocol.LedgerWriteToken].(*types.AttributeValueMemberS); ok && t.Value == token {
			return nil
		}
		return errConditionFailed
	}
	return err
}
