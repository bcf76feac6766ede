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

// ErrKeyInUse: the idempotency key belongs to another owner (ClaimKey).
var ErrKeyInUse = errors.New("idempotency key in use by another owner")

// ClaimKey makes owner the idempotency key's owner if the key has none, and
// succeeds if it is owner's already; ErrKeyInUse when another owner has it.
// The key's item lasts as long as a run claimed at now.
func (l *Store) ClaimKey(ctx context.Context, key, owner string, now time.Time) error {
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.table),
		Item: map[string]types.AttributeValue{
			AttrRunID:     s(KeyPrefix + key),
			AttrKeyOwner:  s(owner),
			AttrExpiresAt: &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(l.retention).Unix(), 10)},
		},
		ConditionExpression:       aws.String("attribute_not_exists(#id) OR #owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#id": AttrRunID, "#owner": AttrKeyOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": s(owner)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrKeyInUse
	}
	if err != nil {
		return fmt.Errorf("claiming idempotency key %q in the ledger: %w", key, err)
	}
	return nil
}

// The ledger's versioned items, which are not runs: a group's concurrency
// slots (SlotKeyPrefix + group) and a principal's open runs
// (PrincipalPrefix + key). Each change reads the item with its version and
// writes it back only at that version (compare-and-set).

// Slots is a concurrency group's item as read.
type Slots struct {
	Exists  bool
	Version int64
	Holders map[string]string // run id → since (Stamp)
	Waiting []string          // run ids, oldest first
}

func slotKey(group string) string { return SlotKeyPrefix + group }

// GetSlots reads a group's slots.
func (l *Store) GetSlots(ctx context.Context, group string) (Slots, error) {
	item, version, err := l.getVersioned(ctx, slotKey(group), AttrSlotVersion)
	if err != nil {
		return Slots{}, fmt.Errorf("reading concurrency slots %s: %w", group, err)
	}
	st := Slots{Exists: item != nil, Version: version, Holders: map[string]string{}}
	if m, ok := item[AttrSlotHolders].(*types.AttributeValueMemberM); ok {
		for k, v := range m.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				st.Holders[k] = sv.Value
			}
		}
	}
	if l, ok := item[AttrSlotWaiting].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				st.Waiting = append(st.Waiting, sv.Value)
			}
		}
	}
	return st, nil
}

// PutSlots writes st if the item is still at the version it was read at
// (ErrConditionFailed otherwise).
func (l *Store) PutSlots(ctx context.Context, group string, read, st Slots) error {
	holders := map[string]types.AttributeValue{}
	for k, v := range st.Holders {
		holders[k] = s(v)
	}
	waiting := make([]types.AttributeValue, 0, len(st.Waiting))
	for _, w := range st.Waiting {
		waiting = append(waiting, s(w))
	}
	item := map[string]types.AttributeValue{
		AttrRunID:       s(slotKey(group)),
		AttrStatus:      s(slotsItemStatus),
		AttrSlotHolders: &types.AttributeValueMemberM{Value: holders},
		AttrSlotWaiting: &types.AttributeValueMemberL{Value: waiting},
	}
	if err := l.putVersioned(ctx, item, AttrSlotVersion, read.Exists, read.Version); err != nil {
		if errors.Is(err, ErrConditionFailed) {
			return err
		}
		return fmt.Errorf("writing concurrency slots %s: %w", group, err)
	}
	return nil
}

// OpenRuns is a principal's open runs as read (the throttle).
type OpenRuns struct {
	Exists  bool
	Version int64
	Open    map[string]int64 // run id → slot expiry (epoch seconds)
}

// GetOpenRuns reads the open runs of the principal with key.
func (l *Store) GetOpenRuns(ctx context.Context, key string) (OpenRuns, error) {
	item, version, err := l.getVersioned(ctx, PrincipalPrefix+key, AttrVersion)
	if err != nil {
		return OpenRuns{}, fmt.Errorf("reading the open runs of %s from the ledger: %w", key, err)
	}
	ps := OpenRuns{Exists: item != nil, Version: version, Open: map[string]int64{}}
	if m, ok := item[AttrOpenRuns].(*types.AttributeValueMemberM); ok {
		for id, v := range m.Value {
			if n, ok := v.(*types.AttributeValueMemberN); ok {
				exp, _ := strconv.ParseInt(n.Value, 10, 64)
				ps.Open[id] = exp
			}
		}
	}
	return ps, nil
}

// PutOpenRuns writes the principal's open runs if the item is still at the
// version read (ErrConditionFailed otherwise).
func (l *Store) PutOpenRuns(ctx context.Context, key string, seen OpenRuns, open map[string]int64) error {
	m := make(map[string]types.AttributeValue, len(open))
	var last int64
	for id, exp := range open {
		m[id] = &types.AttributeValueMemberN{Value: strconv.FormatInt(exp, 10)}
		last = max(last, exp)
	}
	item := map[string]types.AttributeValue{
		AttrRunID:    s(PrincipalPrefix + key),
		AttrOpenRuns: &types.AttributeValueMemberM{Value: m},
		// The item goes with its last slot (DynamoDB TTL), or a day after it
		// was last written empty.
		AttrExpiresAt: &types.AttributeValueMemberN{Value: strconv.FormatInt(max(last, time.Now().Add(24*time.Hour).Unix()), 10)},
	}
	if err := l.putVersioned(ctx, item, AttrVersion, seen.Exists, seen.Version); err != nil {
		if errors.Is(err, ErrConditionFailed) {
			return err
		}
		return fmt.Errorf("writing the open runs of %s to the ledger: %w", key, err)
	}
	return nil
}

// FreeOpenRun gives back a run's slot among the principal's open runs; a
// slot that is not there is no error.
func (l *Store) FreeOpenRun(ctx context.Context, key, runID string) error {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      map[string]types.AttributeValue{AttrRunID: s(PrincipalPrefix + key)},
		UpdateExpression:         aws.String("REMOVE #open.#run ADD #v :one"),
		ConditionExpression:      aws.String("attribute_exists(#open.#run)"),
		ExpressionAttributeNames: map[string]string{"#open": AttrOpenRuns, "#run": runID, "#v": AttrVersion},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": &types.AttributeValueMemberN{Value: "1"},
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("freeing the slot of run %s of %s in the ledger: %w", runID, key, err)
	}
	return nil
}

// getVersioned reads a ledger item that is not a run with its version
// (versionAttr); a nil item when there is none.
func (l *Store) getVersioned(ctx context.Context, key, versionAttr string) (map[string]types.AttributeValue, int64, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{AttrRunID: s(key)},
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

// putVersioned writes item (a ledger item that is not a run) if it is still
// at the version it was read at (versionAttr; absent when !exists), with the
// version one higher; ErrConditionFailed when someone wrote it in between.
func (l *Store) putVersioned(ctx context.Context, item map[string]types.AttributeValue, versionAttr string, exists bool, version int64) error {
	item[versionAttr] = &types.AttributeValueMemberN{Value: strconv.FormatInt(version+1, 10)}
	in := &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item}
	if exists {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": versionAttr}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(" + AttrRunID + ")")
	}
	// A token of this write: when its answer is lost and the SDK's repeat
	// fails the condition on it, the write is known as ours (the change it
	// computed, e.g. which waiters it superseded, still stands).
	token := NewToken()
	item[AttrWriteToken] = s(token)
	_, err := l.db.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, _, gerr := l.getVersioned(ctx, item[AttrRunID].(*types.AttributeValueMemberS).Value, versionAttr)
		if gerr != nil {
			return gerr
		}
		if t, ok := cur[AttrWriteToken].(*types.AttributeValueMemberS); ok && t.Value == token {
			return nil
		}
		return ErrConditionFailed
	}
	return err
}
