package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A job's warm runners (docs/DISPATCHER.md, "Warm runners"): an item of the
// run ledger whose key is WarmKeyPrefix + the job, holding its slots as a
// map slot id → the slot (a JSON string, WarmSlot). Every change of one
// slot is one UpdateItem conditioned on the slot being exactly as read
// (compare-and-set on that map entry), so two invocations never both move
// a slot: in particular an idle slot is assigned to one run only.
const (
	WarmKeyPrefix = "warm#"
	AttrWarmSlots = "warm_slots"
	// AttrWarmJobs, on the item whose key is WarmKeyPrefix alone, is the
	// set of jobs that have had warm runners.
	AttrWarmJobs   = "warm_jobs"
	warmItemStatus = "warm" // the status attribute of a warm pool item (not a run status)
	// AttrWarmSlot, on a run's item, is the slot the run was assigned to.
	AttrWarmSlot = "warm_slot"
)

// Slot states.
const (
	SlotStarting = "starting" // RunTask called (or about to be); ECS has not reported it RUNNING
	SlotIdle     = "idle"     // ECS reported the task RUNNING: it waits for an assignment
	SlotAssigned = "assigned" // given to one run (Run): never given again
)

// WarmSlot is one warm runner.
type WarmSlot struct {
	State   string    `json:"state"`
	Inbox   string    `json:"inbox"`          // the slot's inbox queue URL
	TaskDef string    `json:"task_def"`       // the task definition revision it was started with
	TaskARN string    `json:"task,omitempty"` // known once RunTask answered or ECS reported it
	Run     string    `json:"run,omitempty"`  // the run it was assigned to
	Since   time.Time `json:"since"`          // when it entered State
	Created time.Time `json:"created"`
	Running time.Time `json:"running,omitzero"` // when ECS reported it RUNNING
}

func (s WarmSlot) encode() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// WarmPool is a job's slots as read, with each slot's stored form (the
// value a compare-and-set must find).
type WarmPool struct {
	Slots map[string]WarmSlot
	raw   map[string]string
}

// Idle are the ids of the pool's idle slots, sorted.
func (p WarmPool) Idle() []string {
	var ids []string
	for id, s := range p.Slots {
		if s.State == SlotIdle {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func warmKey(job string) string { return WarmKeyPrefix + job }

// GetWarm reads a job's warm slots (none when the item does not exist).
func (l *Store) GetWarm(ctx context.Context, job string) (WarmPool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{AttrRunID: s(warmKey(job))},
	})
	if err != nil {
		return WarmPool{}, fmt.Errorf("reading the warm runners of %s from the ledger: %w", job, err)
	}
	p := WarmPool{Slots: map[string]WarmSlot{}, raw: map[string]string{}}
	m, _ := out.Item[AttrWarmSlots].(*types.AttributeValueMemberM)
	if m == nil {
		return p, nil
	}
	for id, v := range m.Value {
		sv, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			continue
		}
		var slot WarmSlot
		if json.Unmarshal([]byte(sv.Value), &slot) != nil {
			continue // not ours to read; left alone
		}
		p.Slots[id], p.raw[id] = slot, sv.Value
	}
	return p, nil
}

// AddWarmSlot records a new slot of job (before its task is started, so
// that ECS's events for it find it).
func (l *Store) AddWarmSlot(ctx context.Context, job, id string, slot WarmSlot) error {
	// The item first, with an empty map if it has none (one expression
	// cannot both create the map and set one of its entries).
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{AttrRunID: s(warmKey(job))},
		UpdateExpression:          aws.String("SET #slots = if_not_exists(#slots, :empty), #status = :status"),
		ExpressionAttributeNames:  map[string]string{"#slots": AttrWarmSlots, "#status": AttrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{":empty": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}, ":status": s(warmItemStatus)},
	})
	if err != nil {
		return fmt.Errorf("creating the warm runners of %s in the ledger: %w", job, err)
	}
	// The index of jobs with warm runners, which the sweep reads to stop
	// those of a job no longer in the catalogue (the dispatcher never scans).
	_, err = l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{AttrRunID: s(WarmKeyPrefix)},
		UpdateExpression:          aws.String("ADD #jobs :job SET #status = :status"),
		ExpressionAttributeNames:  map[string]string{"#jobs": AttrWarmJobs, "#status": AttrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{":job": &types.AttributeValueMemberSS{Value: []string{job}}, ":status": s(warmItemStatus)},
	})
	if err != nil {
		return fmt.Errorf("indexing the warm runners of %s in the ledger: %w", job, err)
	}
	_, err = l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{AttrRunID: s(warmKey(job))},
		UpdateExpression:          aws.String("SET #slots.#id = :v"),
		ConditionExpression:       aws.String("attribute_not_exists(#slots.#id)"),
		ExpressionAttributeNames:  map[string]string{"#slots": AttrWarmSlots, "#id": id},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": s(slot.encode())},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrConditionFailed
	}
	if err != nil {
		return fmt.Errorf("adding warm runner %s of %s to the ledger: %w", id, job, err)
	}
	return nil
}

// SetWarmSlot moves slot id of job from seen (as read in p) to next, only
// if it is still exactly as read; ErrConditionFailed otherwise (another
// invocation moved it first). When the answer to our own write was lost
// and the SDK's repeat failed the condition, the slot is found as next and
// the write counts as ours.
func (l *Store) SetWarmSlot(ctx context.Context, job, id string, p WarmPool, next WarmSlot) error {
	return l.casWarm(ctx, job, id, p, &next)
}

// RemoveWarmSlot removes slot id of job, only if it is still as read in p.
func (l *Store) RemoveWarmSlot(ctx context.Context, job, id string, p WarmPool) error {
	return l.casWarm(ctx, job, id, p, nil)
}

func (l *Store) casWarm(ctx context.Context, job, id string, p WarmPool, next *WarmSlot) error {
	seen, ok := p.raw[id]
	if !ok {
		return ErrConditionFailed
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{AttrRunID: s(warmKey(job))},
		UpdateExpression:          aws.String("REMOVE #slots.#id"),
		ConditionExpression:       aws.String("#slots.#id = :seen"),
		ExpressionAttributeNames:  map[string]string{"#slots": AttrWarmSlots, "#id": id},
		ExpressionAttributeValues: map[string]types.AttributeValue{":seen": s(seen)},
	}
	if next != nil {
		in.UpdateExpression = aws.String("SET #slots.#id = :next")
		in.ExpressionAttributeValues[":next"] = s(next.encode())
	}
	_, err := l.db.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		now, gerr := l.GetWarm(ctx, job)
		if gerr != nil {
			return gerr
		}
		cur, present := now.raw[id]
		if (next == nil && !present) || (next != nil && present && cur == next.encode()) {
			return nil // our own write, its answer lost
		}
		return ErrConditionFailed
	}
	if err != nil {
		return fmt.Errorf("updating warm runner %s of %s in the ledger: %w", id, job, err)
	}
	return nil
}

// StartWarm records a run's task as Start does, the warm slot it was
// assigned to, and when that slot's task had started (running; zero:
// unknown), for show's start breakdown.
func (l *Store) StartWarm(ctx context.Context, runID, taskARN, queueURL, slot string, running time.Time) (Item, error) {
	set := map[string]string{AttrTaskARN: taskARN, AttrQueueURL: queueURL, AttrWarmSlot: slot}
	if !running.IsZero() {
		set[AttrTaskStartedAt] = Stamp(running)
	}
	return l.start(ctx, runID, set)
}

// WarmJobs is every job that has had warm runners (the index AddWarmSlot
// keeps), whether or not the catalogue still names it.
func (l *Store) WarmJobs(ctx context.Context) ([]string, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{AttrRunID: s(WarmKeyPrefix)},
	})
	if err != nil {
		return nil, fmt.Errorf("reading the jobs with warm runners from the ledger: %w", err)
	}
	if ss, ok := out.Item[AttrWarmJobs].(*types.AttributeValueMemberSS); ok {
		return ss.Value, nil
	}
	return nil, nil
}

// AssignWarm records slot as the warm runner runID is given to, before the
// assignment is sent, only if the run has none yet or has this one: a run
// is never given to two slots, even by a retry that finds its first slot
// gone from the pool. It returns the slot the run is recorded with: slot,
// or the one it had (then the caller must not send to slot).
func (l *Store) AssignWarm(ctx context.Context, runID, slot string) (string, error) {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       key(runID),
		UpdateExpression:          aws.String("SET #ws = :ws"),
		ConditionExpression:       aws.String("attribute_exists(#pk) AND (attribute_not_exists(#ws) OR #ws = :ws)"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrRunID, "#ws": AttrWarmSlot},
		ExpressionAttributeValues: map[string]types.AttributeValue{":ws": s(slot)},
	})
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		if err != nil {
			return "", fmt.Errorf("recording warm runner %s for run %s in the ledger: %w", slot, runID, err)
		}
		return slot, nil
	}
	it, ok, gerr := l.Get(ctx, runID)
	switch {
	case gerr != nil:
		return "", gerr
	case !ok || it.WarmSlot == "":
		return "", fmt.Errorf("run %s is not in the ledger; cannot record its warm runner", runID)
	}
	return it.WarmSlot, nil
}
