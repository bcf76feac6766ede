package protocol

import "time"

// TypeQueued says the run waits for a concurrency slot of its job (or its
// job's concurrency group). The dispatcher writes it when the run starts
// waiting and may write it again; its Seq is not 1 (accepted and rejected
// keep Seq 1 and the dedup id "dispatcher-1"), and the trigger shows every
// queued record until the run's decision (accepted or rejected) comes.
const TypeQueued RecordType = "queued"

// Queued is the payload of a queued record.
type Queued struct {
	// Group names the slots: "job:<name>" or "group:<concurrency_group>".
	Group       string `json:"group"`
	Concurrency int    `json:"concurrency"`
	// Position is the run's place among the waiting runs, from 1.
	Position int `json:"position"`
	// Holder is a run that holds a slot, with its requester and since when.
	Holder          string    `json:"holder,omitempty"`
	HolderRequester string    `json:"holder_requester,omitempty"`
	HolderSince     time.Time `json:"holder_since,omitzero"`
	// Approvers, when set, say the run waits for approval by one of these
	// principal patterns (not for a slot; Position is then 0).
	Approvers []string `json:"approvers,omitempty"`
	// RunID, with Approvers, is the waiting run's id, for the approver's
	// command the trigger prints (deploy-trigger approve RUN_ID).
	RunID string `json:"run_id,omitempty"`
}

// Request kinds of approvals: an approver's decision about a run that
// waits for approval (the run id is the run's). They carry nothing but the
// run id, the timestamps and the approver's proof of identity.
const (
	KindApprove Kind = "approve"
	KindReject  Kind = "reject"
)

// RejectDisapproved: an approver rejected the run.
const RejectDisapproved = "disapproved"

// Rejection codes of concurrency policies.
const (
	// RejectBusy: on_full reject, and every slot is held.
	RejectBusy = "concurrency-limit"
	// RejectSuperseded: on_full supersede, and a newer run of the group
	// replaced this waiting one.
	RejectSuperseded = "superseded"
)
