package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Run statuses kept in the ledger.
const (
	StatusLaunching = "launching" // claimed; the task is being started
	StatusRejected  = "rejected"  // refused; nothing was launched
	StatusAccepted  = "accepted"  // RunTask succeeded
	StatusStopped   = "stopped"   // ECS reported the task STOPPED
	StatusAbandoned = "abandoned" // the sweep found it without an end
	StatusCancelled = "cancelled" // a cancel came before the run request: the run id is closed
)

// ledgerItem is one run in the ledger, keyed by run id.
type ledgerItem struct {
	RunID          string
	IdempotencyKey string // the request's, if any
	Status         string
	Job            string
	Params         map[string]string // secret values redacted
	Requester      string            // claimed by the client (Requester.String)
	RequestedBy    string            // verified principal ARN
	CancelledBy    string            // verified principal ARN of the cancel
	// ControlPattern is the session pattern of allowed_principals that
	// authorised the run when no role-wide entry did (controlPattern);
	// mayControl requires a controller of the requester's role to match it.
	ControlPattern string
	RequestHash    string
	RequestedAt    time.Time
	CreatedAt      time.Time
	// LeaseUntil is when the invocation that holds the launch claim is
	// certainly over (its Lambda deadline): only after it may another
	// invocation take the launch over.
	LeaseUntil  time.Time
	EndedAt     time.Time
	NotifiedAt  time.Time // accepted or rejected was written to the queue
	CancelAsked time.Time
	CancelledAt time.Time // StopTask was called for a cancel
	TaskARN     string
	QueueURL    string
	RejectCode  string
	Reason      string
	// ClaimToken is unique to one claim attempt: when the answer to a
	// successful claim is lost and the SDK retries the put, the retry finds
	// its own token and knows the claim is its own, not a second delivery.
	ClaimToken string
	// WriteToken is the token of the last conditional update (update,
	// takeOver): a writer whose answer was lost finds its own token here.
	WriteToken string
	// QueuedRequest is a waiting run's request (waiting.go).
	QueuedRequest string
	// Approval is approved or rejected (approval.go), ApprovalBy who decided.
	Approval   string
	ApprovalBy string
	// Slot is the principal key whose open-run slot the run took
	// (throttle.go), empty when it took none.
	Slot string
}

// ledger is the DynamoDB run ledger.
type ledger struct {
	db        DynamoAPI
	table     string
	retention time.Duration
}

var (
	errAlreadyClaimed  = errors.New("run id already claimed")
	errConditionFailed = errors.New("ledger condition failed")
)

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// claimAttrs is a claim's item.
func (l *ledger) claimAttrs(it ledgerItem) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		protocol.LedgerRunID:       s(it.RunID),
		protocol.LedgerStatus:      s(it.Status),
		protocol.LedgerJob:         s(it.Job),
		protocol.LedgerRequester:   s(it.Requester),
		protocol.LedgerRequestedBy: s(it.RequestedBy),
		protocol.LedgerRequestHash: s(it.RequestHash),
		protocol.LedgerRequestedAt: s(stamp(it.RequestedAt)),
		protocol.LedgerCreatedAt:   s(stamp(it.CreatedAt)),
		protocol.LedgerLeaseUntil:  s(stamp(it.LeaseUntil)),
		protocol.LedgerClaimToken:  s(it.ClaimToken),
		protocol.LedgerHistory:     s(protocol.LedgerHistoryValue),
		protocol.LedgerAttempts:    &types.AttributeValueMemberN{Value: "1"},
		protocol.LedgerExpiresAt:   &types.AttributeValueMemberN{Value: strconv.FormatInt(it.CreatedAt.Add(l.retention).Unix(), 10)},
	}
	if it.IdempotencyKey != "" {
		item[protocol.LedgerIdempotencyKey] = s(it.IdempotencyKey)
	}
	if it.CancelledBy != "" {
		item[protocol.LedgerCancelledBy] = s(it.CancelledBy)
	}
	if it.Slot != "" {
		item[protocol.LedgerSlot] = s(it.Slot)
	}
	if it.ControlPattern != "" {
		item[protocol.LedgerControlledBy] = s(it.ControlPattern)
	}
	if it.Reason != "" {
		item[protocol.LedgerReason] = s(it.Reason)
		item[protocol.LedgerRejectCode] = s(it.RejectCode)
	}
	if len(it.Params) > 0 {
		m := map[string]types.AttributeValue{}
		for k, v := range it.Params {
			m[k] = s(v)
		}
		item[protocol.LedgerParams] = &types.AttributeValueMemberM{Value: m}
	}
	return item
}

// claim creates the run's item only if the run id is new.
func (l *ledger) claim(ctx context.Context, it ledgerItem) error {
	item := l.claimAttrs(it)
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(l.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(run_id)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return l.ownClaim(ctx, it, errAlreadyClaimed)
	}
	if err != nil {
		return fmt.Errorf("claiming run %s in the ledger: %w", it.RunID, err)
	}
	return nil
}

// ownClaim settles a claim put that failed its condition: our own earlier
// attempt, whose answer was lost and which the SDK repeated (the item has
// our claim token), or somebody else's (notOurs).
func (l *ledger) ownClaim(ctx context.Context, it ledgerItem, notOurs error) error {
	prev, ok, err := l.get(ctx, it.RunID)
	if err != nil {
		return err
	}
	if ok && it.ClaimToken != "" && prev.ClaimToken == it.ClaimToken {
		return nil
	}
	return notOurs
}

// newToken returns a random token for one claim attempt or one conditional
// write (claim_token, write_token).
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// get reads a run's item; ok is false when there is none.
func (l *ledger) get(ctx context.Context, runID string) (ledgerItem, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		Key:            map[string]types.AttributeValue{protocol.LedgerRunID: s(runID)},
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
	var params map[string]string
	if m, ok := a[protocol.LedgerParams].(*types.AttributeValueMemberM); ok {
		params = map[string]string{}
		for k, v := range m.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				params[k] = sv.Value
			}
		}
	}
	return ledgerItem{
		RunID: str(protocol.LedgerRunID), Status: str(protocol.LedgerStatus), Job: str(protocol.LedgerJob), Params: params, Requester: str(protocol.LedgerRequester),
		RequestedBy: str(protocol.LedgerRequestedBy), CancelledBy: str(protocol.LedgerCancelledBy), ControlPattern: str(protocol.LedgerControlledBy),
		RequestHash: str(protocol.LedgerRequestHash), RequestedAt: tm(protocol.LedgerRequestedAt), CreatedAt: tm(protocol.LedgerCreatedAt),
		LeaseUntil: tm(protocol.LedgerLeaseUntil), EndedAt: tm(protocol.LedgerEndedAt), NotifiedAt: tm(protocol.LedgerNotifiedAt),
		CancelAsked: tm(protocol.LedgerCancelAsked), CancelledAt: tm(protocol.LedgerCancelledAt), TaskARN: str(protocol.LedgerTaskARN), QueueURL: str(protocol.LedgerQueueURL),
		RejectCode: str(protocol.LedgerRejectCode), Reason: str(protocol.LedgerReason), ClaimToken: str(protocol.LedgerClaimToken),
		WriteToken:    str(protocol.LedgerWriteToken),
		QueuedRequest: str(protocol.LedgerQueuedRequest), Approval: str(protocol.LedgerApproval), ApprovalBy: str(protocol.LedgerApprovalBy),
		Slot: str(protocol.LedgerSlot),
	}
}

// cond is an extra condition on an update: attribute = value, or, with an
// empty value, attribute does not exist.
type cond struct{ attr, value string }

// update sets attributes of an existing item, only if every condition holds
// (errConditionFailed otherwise), and returns the item as it is afterwards
// (after a lost answer to our own write: as read back, which may include
// later unconditional writes, e.g. a cancel asked meanwhile).
func (l *ledger) update(ctx context.Context, runID string, set map[string]string, conds ...cond) (ledgerItem, error) {
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
		token = newToken()
		names["#wt"], values[":wt"] = protocol.LedgerWriteToken, s(token)
		expr += ", #wt = :wt"
	}
	condition := "attribute_exists(run_id)"
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
		Key:                       map[string]types.AttributeValue{protocol.LedgerRunID: s(runID)},
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
		return ledgerItem{}, fmt.Errorf("updating run %s in the ledger: %w", runID, err)
	}
	return itemFromAttrs(out.Attributes), nil
}

// ownWrite settles a failed condition: the item as it is if its last
// conditional write was the one with token (ours, its answer lost), else
// errConditionFailed.
func (l *ledger) ownWrite(ctx context.Context, runID, token string) (ledgerItem, error) {
	if token == "" {
		return ledgerItem{}, errConditionFailed
	}
	it, ok, err := l.get(ctx, runID)
	if err != nil {
		return ledgerItem{}, err
	}
	if !ok || it.WriteToken != token {
		return ledgerItem{}, errConditionFailed
	}
	return it, nil
}

// takeOver moves an interrupted launch claim to this invocation: it succeeds
// for exactly one caller that saw the same expired lease.
func (l *ledger) takeOver(ctx context.Context, runID string, seen, lease time.Time) error {
	token := newToken()
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      map[string]types.AttributeValue{protocol.LedgerRunID: s(runID)},
		UpdateExpression:         aws.String("SET #lease = :lease, #wt = :wt ADD #attempts :one"),
		ConditionExpression:      aws.String("#status = :launching AND #lease = :seen"),
		ExpressionAttributeNames: map[string]string{"#lease": protocol.LedgerLeaseUntil, "#attempts": protocol.LedgerAttempts, "#status": protocol.LedgerStatus, "#wt": protocol.LedgerWriteToken},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":lease": s(stamp(lease)), ":seen": s(stamp(seen)), ":launching": s(StatusLaunching),
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

// replaceTombstone puts a run's claim in place of an early cancel's item
// (status cancelled, no request) that has the given claim token.
func (l *ledger) replaceTombstone(ctx context.Context, it ledgerItem, token string) error {
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(l.table),
		Item:                     l.claimAttrs(it),
		ConditionExpression:      aws.String("#status = :cancelled AND #token = :token AND #hash = :empty"),
		ExpressionAttributeNames: map[string]string{"#status": protocol.LedgerStatus, "#token": protocol.LedgerClaimToken, "#hash": protocol.LedgerRequestHash},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":cancelled": s(StatusCancelled), ":token": s(token), ":empty": s(""),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return l.ownClaim(ctx, it, errConditionFailed)
	}
	if err != nil {
		return fmt.Errorf("replacing the early cancel of run %s in the ledger: %w", it.RunID, err)
	}
	return nil
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
