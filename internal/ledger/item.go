package ledger

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is one run in the ledger, keyed by run id: the one decoding of the
// item, for the dispatcher and the history commands alike.
type Item struct {
	RunID          string
	IdempotencyKey string // the request's, if any
	Status         Status
	Job            string
	Params         map[string]string // secret values redacted
	Requester      string            // claimed by the client (Requester.String)
	RequestedBy    string            // verified principal ARN
	CancelledBy    string            // verified principal ARN of the cancel
	// ControlPattern is the session pattern of allowed_principals that
	// authorised the run when no role-wide entry did; a controller of the
	// requester's role must match it.
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
	ReleasedAt  time.Time
	TaskARN     string
	QueueURL    string
	RejectCode  string
	Reason      string
	StopCode    string
	StopReason  string
	ExitCode    *int // the runner container's, from the STOPPED event
	// LogExitCode is the run log's exit code when it disagreed with
	// ExitCode (ECS's, which wins); nil when they agree.
	LogExitCode *int
	Outputs     map[string]string // the job's outputs, copied from the run log
	// ClaimToken is unique to one claim attempt: when the answer to a
	// successful claim is lost and the SDK retries the put, the retry finds
	// its own token and knows the claim is its own, not a second delivery.
	ClaimToken string
	// WriteToken is the token of the last conditional update: a writer
	// whose answer was lost finds its own token here.
	WriteToken string
	// QueuedRequest is a waiting run's request.
	QueuedRequest string
	// Approval is ApprovalApproved or ApprovalRejected, ApprovalBy who decided.
	Approval   string
	ApprovalBy string
	ApprovalAt time.Time
	// QueuedAt is since when a waiting run waits.
	QueuedAt time.Time
	// Slot is the principal key whose open-run slot the run took, empty
	// when it took none.
	Slot string
	// TaskStart is the run's task start as ECS reported it.
	TaskStart TaskStart
	// WarmSlot is the warm runner the run was assigned to (warm.go), empty
	// for a run that started a task of its own.
	WarmSlot string
}

// TaskStart is a task's start as ECS's task state change events give it;
// a zero time is one no event gave (yet).
type TaskStart struct {
	Created     time.Time // ECS accepted RunTask (createdAt)
	PullStarted time.Time // the image pull began (pullStartedAt)
	PullStopped time.Time // the image pull ended (pullStoppedAt)
	Started     time.Time // the task is RUNNING (startedAt)
}

// IsZero says that no time is known.
func (ts TaskStart) IsZero() bool { return ts == TaskStart{} }

// Adds says whether ts has a time that have lacks: a write of ts would
// record something new.
func (ts TaskStart) Adds(have TaskStart) bool {
	for _, p := range ts.pairs(have) {
		if !p[0].IsZero() && p[1].IsZero() {
			return true
		}
	}
	return false
}

// pairs lines ts's times up with other's, in the order of a start.
func (ts TaskStart) pairs(other TaskStart) [4][2]time.Time {
	return [4][2]time.Time{{ts.Created, other.Created}, {ts.PullStarted, other.PullStarted}, {ts.PullStopped, other.PullStopped}, {ts.Started, other.Started}}
}

// attrs are the attributes of ts's known times.
func (ts TaskStart) attrs() map[string]string {
	set := map[string]string{}
	for i, p := range ts.pairs(TaskStart{}) {
		if !p[0].IsZero() {
			set[taskStartNames[i]] = Stamp(p[0])
		}
	}
	return set
}

// taskStartNames are TaskStart's attributes, in pairs' order.
var taskStartNames = [4]string{AttrTaskCreatedAt, AttrPullStartedAt, AttrPullStoppedAt, AttrTaskStartedAt}

// CancelRequested says a cancel was asked for the run (or its task stopped for one).
func (it Item) CancelRequested() bool { return !it.CancelAsked.IsZero() || !it.CancelledAt.IsZero() }

// Stamp is how the ledger writes a time.
func Stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// Decode reads a run's item. Unknown attributes are ignored (an item of a
// newer dispatcher); a time or number that does not parse reads as absent.
func Decode(a map[string]types.AttributeValue) Item {
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
	it := Item{
		RunID: str(AttrRunID), Status: Status(str(AttrStatus)), Job: str(AttrJob), Requester: str(AttrRequester),
		RequestedBy: str(AttrRequestedBy), CancelledBy: str(AttrCancelledBy), ControlPattern: str(AttrControlledBy),
		RequestHash: str(AttrRequestHash), RequestedAt: tm(AttrRequestedAt), CreatedAt: tm(AttrCreatedAt),
		LeaseUntil: tm(AttrLeaseUntil), EndedAt: tm(AttrEndedAt), NotifiedAt: tm(AttrNotifiedAt),
		CancelAsked: tm(AttrCancelAsked), CancelledAt: tm(AttrCancelledAt), ReleasedAt: tm(AttrReleasedAt),
		TaskARN: str(AttrTaskARN), QueueURL: str(AttrQueueURL), RejectCode: str(AttrRejectCode), Reason: str(AttrReason),
		StopCode: str(AttrStopCode), StopReason: str(AttrStopReason), ClaimToken: str(AttrClaimToken),
		WriteToken: str(AttrWriteToken), QueuedRequest: str(AttrQueuedRequest), Approval: str(AttrApproval),
		ApprovalBy: str(AttrApprovalBy), ApprovalAt: tm(AttrApprovalAt), QueuedAt: tm(AttrQueuedAt), Slot: str(AttrSlot), WarmSlot: str(AttrWarmSlot), IdempotencyKey: str(AttrIdempotencyKey),
		TaskStart: TaskStart{Created: tm(AttrTaskCreatedAt), PullStarted: tm(AttrPullStartedAt), PullStopped: tm(AttrPullStoppedAt), Started: tm(AttrTaskStartedAt)},
	}
	if m, ok := a[AttrParams].(*types.AttributeValueMemberM); ok {
		it.Params = map[string]string{}
		for k, v := range m.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				it.Params[k] = sv.Value
			}
		}
	}
	for k, p := range map[string]**int{AttrExitCode: &it.ExitCode, AttrLogExitCode: &it.LogExitCode} {
		if n, err := strconv.Atoi(str(k)); err == nil {
			*p = &n
		}
	}
	if v := str(AttrOutputs); v != "" {
		_ = json.Unmarshal([]byte(v), &it.Outputs) // the dispatcher's copy from the run log
	}
	return it
}

// claimAttrs is a claim's item.
func (l *Store) claimAttrs(it Item) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		AttrRunID:       s(it.RunID),
		AttrStatus:      s(string(it.Status)),
		AttrJob:         s(it.Job),
		AttrRequester:   s(it.Requester),
		AttrRequestedBy: s(it.RequestedBy),
		AttrRequestHash: s(it.RequestHash),
		AttrRequestedAt: s(Stamp(it.RequestedAt)),
		AttrCreatedAt:   s(Stamp(it.CreatedAt)),
		AttrLeaseUntil:  s(Stamp(it.LeaseUntil)),
		AttrClaimToken:  s(it.ClaimToken),
		AttrHistory:     s(HistoryValue),
		AttrAttempts:    &types.AttributeValueMemberN{Value: "1"},
		AttrExpiresAt:   &types.AttributeValueMemberN{Value: strconv.FormatInt(it.CreatedAt.Add(l.retention).Unix(), 10)},
	}
	if it.IdempotencyKey != "" {
		item[AttrIdempotencyKey] = s(it.IdempotencyKey)
	}
	if it.CancelledBy != "" {
		item[AttrCancelledBy] = s(it.CancelledBy)
	}
	if it.Slot != "" {
		item[AttrSlot] = s(it.Slot)
	}
	if it.ControlPattern != "" {
		item[AttrControlledBy] = s(it.ControlPattern)
	}
	if it.Reason != "" {
		item[AttrReason] = s(it.Reason)
		item[AttrRejectCode] = s(it.RejectCode)
	}
	if len(it.Params) > 0 {
		m := map[string]types.AttributeValue{}
		for k, v := range it.Params {
			m[k] = s(v)
		}
		item[AttrParams] = &types.AttributeValueMemberM{Value: m}
	}
	return item
}
