package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// API is the part of the DynamoDB client the dispatcher's ledger uses.
type API interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// Store is the run ledger as the dispatcher writes it: a claim, then one
// method per decision (transitions.go), each one conditional write.
type Store struct {
	db        API
	table     string
	retention time.Duration
}

// New returns the ledger in table; items expire retention after their run
// was claimed.
func New(db API, table string, retention time.Duration) *Store {
	return &Store{db: db, table: table, retention: retention}
}

var (
	// ErrAlreadyClaimed: the run id is in the ledger already, by another claim.
	ErrAlreadyClaimed = errors.New("run id already claimed")
	// ErrConditionFailed: the run was not as the write required (another
	// invocation changed it first).
	ErrConditionFailed = errors.New("ledger condition failed")
)

// Claim creates the run's item only if the run id is new.
func (l *Store) Claim(ctx context.Context, it Item) error {
	item := l.claimAttrs(it)
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(l.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(" + AttrRunID + ")"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return l.ownClaim(ctx, it, ErrAlreadyClaimed)
	}
	if err != nil {
		return fmt.Errorf("claiming run %s in the ledger: %w", it.RunID, err)
	}
	return nil
}

// ownClaim settles a claim put that failed its condition: our own earlier
// attempt, whose answer was lost and which the SDK repeated (the item has
// our claim token), or somebody else's (notOurs).
func (l *Store) ownClaim(ctx context.Context, it Item, notOurs error) error {
	prev, ok, err := l.Get(ctx, it.RunID)
	if err != nil {
		return err
	}
	if ok && it.ClaimToken != "" && prev.ClaimToken == it.ClaimToken {
		return nil
	}
	return notOurs
}

// NewToken returns a random token for one claim attempt or one conditional
// write (claim_token, write_token).
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Get reads a run's item; ok is false when there is none.
func (l *Store) Get(ctx context.Context, runID string) (Item, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		Key:            map[string]types.AttributeValue{AttrRunID: s(runID)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Item{}, false, fmt.Errorf("reading run %s from the ledger: %w", runID, err)
	}
	if out.Item == nil {
		return Item{}, false, nil
	}
	return Decode(out.Item), true, nil
}

// cond is an extra condition on an update: attribute = value, or, with an
// empty value, attribute does not exist.
type cond struct{ attr, value string }

// update sets attributes of an existing item, only if every condition holds
// (ErrConditionFailed otherwise), and returns the item as it is afterwards
// (after a lost answer to our own write: as read back, which may include
// later unconditional writes, e.g. a cancel asked meanwhile).
func (l *Store) update(ctx context.Context, runID string, set map[string]string, conds ...cond) (Item, error) {
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable expression reads better in traces
	expr := "SET "
	for i, k := range keys {
		if i > 0 {
			expr += ", "
		}
		expr += fmt.Sprintf("#k%d = :v%d", i, i)
		names[fmt.Sprintf("#k%d", i)] = k
		values[fmt.Sprintf(":v%d", i)] = s(set[k])
	}
	// A conditional update carries a token of its own. Its answer may be
	// lost after DynamoDB applied it (a dropped connection); the SDK then
	// sends it again and the repeat fails the condition on the first
	// write. Without the token that reads as "somebody else changed the
	// run", and a transition this invocation made (queued → launching, a
	// take-over, a rejection) would be left for nobody to finish.
	token := ""
	if len(conds) > 0 {
		token = NewToken()
		names["#wt"], values[":wt"] = AttrWriteToken, s(token)
		expr += ", #wt = :wt"
	}
	condition := "attribute_exists(" + AttrRunID + ")"
	for i, c := range conds {
		n, v := fmt.Sprintf("#c%d", i), fmt.Sprintf(":c%d", i)
		names[n] = c.attr
		if c.value == "" {
			condition += " AND attribute_not_exists(" + n + ")"
			continue
		}
		condition += " AND " + n + " = " + v
		values[v] = s(c.value)
	}
	out, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{AttrRunID: s(runID)},
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ConditionExpression:       aws.String(condition),
		ReturnValues:              types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return l.ownWrite(ctx, runID, token)
	}
	if err != nil {
		return Item{}, fmt.Errorf("updating run %s in the ledger: %w", runID, err)
	}
	return Decode(out.Attributes), nil
}

// ownWrite settles a failed condition: the item as it is if its last
// conditional write was the one with token (ours, its answer lost), else
// ErrConditionFailed.
func (l *Store) ownWrite(ctx context.Context, runID, token string) (Item, error) {
	if token == "" {
		return Item{}, ErrConditionFailed
	}
	it, ok, err := l.Get(ctx, runID)
	if err != nil {
		return Item{}, err
	}
	if !ok || it.WriteToken != token {
		return Item{}, ErrConditionFailed
	}
	return it, nil
}

// TakeOver moves an interrupted launch claim to this invocation: it succeeds
// for exactly one caller that saw the same expired lease.
func (l *Store) TakeOver(ctx context.Context, runID string, seen, lease time.Time) error {
	token := NewToken()
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      map[string]types.AttributeValue{AttrRunID: s(runID)},
		UpdateExpression:         aws.String("SET #lease = :lease, #wt = :wt ADD #attempts :one"),
		ConditionExpression:      aws.String("#status = :launching AND #lease = :seen"),
		ExpressionAttributeNames: map[string]string{"#lease": AttrLeaseUntil, "#attempts": AttrAttempts, "#status": AttrStatus, "#wt": AttrWriteToken},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":lease": s(Stamp(lease)), ":seen": s(Stamp(seen)), ":launching": s(string(Launching)),
			":one": &types.AttributeValueMemberN{Value: "1"}, ":wt": s(token),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		_, err := l.ownWrite(ctx, runID, token) // our own take-over, its answer lost?
		return err
	}
	if err != nil {
		return fmt.Errorf("taking over the launch of run %s in the ledger: %w", runID, err)
	}
	return nil
}

// ReplaceTombstone puts a run's claim in place of an early cancel's item
// (status cancelled, no request) that has the given claim token.
func (l *Store) ReplaceTombstone(ctx context.Context, it Item, token string) error {
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(l.table),
		Item:                     l.claimAttrs(it),
		ConditionExpression:      aws.String("#status = :cancelled AND #token = :token AND #hash = :empty"),
		ExpressionAttributeNames: map[string]string{"#status": AttrStatus, "#token": AttrClaimToken, "#hash": AttrRequestHash},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":cancelled": s(string(Cancelled)), ":token": s(token), ":empty": s(""),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return l.ownClaim(ctx, it, ErrConditionFailed)
	}
	if err != nil {
		return fmt.Errorf("replacing the early cancel of run %s in the ledger: %w", it.RunID, err)
	}
	return nil
}
