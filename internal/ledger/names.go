package ledger

// The run ledger's schema: the DynamoDB table the dispatcher writes, the
// stack (infra) and local mode create, and `deploy-trigger runs`, `show`,
// `logs` and `attach` read. Every attribute name is here and nowhere else;
// the item schema is documented in docs/DISPATCHER.md. infra imports this
// package for the names only (it builds no client).

// Attribute names of a run's item. The table's partition key is AttrRunID
// and its TTL attribute AttrExpiresAt.
const (
	AttrRunID       = "run_id"
	AttrStatus      = "status"
	AttrJob         = "job"
	AttrParams      = "params"
	AttrRequester   = "requester"    // the claimed requester (Requester.String)
	AttrRequestedBy = "requested_by" // the verified principal's ARN (proof of identity)
	AttrCancelledBy = "cancelled_by" // the verified principal that cancelled the run
	// AttrControlledBy is the allowed_principals session pattern that let
	// the run in, when only such a pattern did: cancel and release must
	// match it too (absent: any session of the requester's role).
	AttrControlledBy = "controlled_by"
	AttrRequestHash  = "request_hash"
	AttrRequestedAt  = "requested_at"
	AttrCreatedAt    = "created_at"
	AttrExpiresAt    = "expires_at" // DynamoDB TTL, epoch seconds
	AttrLeaseUntil   = "lease_until"
	AttrAttempts     = "attempts"
	AttrQueueURL     = "queue_url"
	AttrTaskARN      = "task_arn"
	AttrRejectCode   = "reject_code"
	AttrReason       = "reason"
	AttrNotifiedAt   = "notified_at"
	AttrEndedAt      = "ended_at"
	AttrStopCode     = "stop_code"
	AttrStopReason   = "stopped_reason"
	AttrExitCode     = "exit_code" // the runner container's, as ECS reports it
	// AttrLogExitCode is the exit code the run log's exit record gave when
	// it disagreed with ECS's (AttrExitCode, which wins): the disagreement,
	// flagged. Absent when they agree (issue 22).
	AttrLogExitCode = "log_exit_code"
	AttrCancelledAt = "cancelled_at"
	AttrCancelAsked = "cancel_requested_at"
	AttrReleasedAt  = "released_at"
	AttrClaimToken  = "claim_token"
	// AttrWriteToken is unique to one conditional update: when its answer
	// is lost and the SDK's retry fails the condition on that very write,
	// the writer finds its token and knows the change is its own.
	AttrWriteToken = "write_token"
	AttrSlot       = "slot" // the principal key whose open-run slot the run took (throttle)
	// AttrIdempotencyKey is the run request's idempotency key, if any.
	AttrIdempotencyKey = "idempotency_key"
	// AttrOutputs holds the job's outputs, a JSON object by name, copied
	// from the run log when the task stops (dispatcher/outputs.go).
	AttrOutputs = "outputs"
	// Approvals (dispatcher/approval.go).
	AttrApproval   = "approval"    // ApprovalApproved | ApprovalRejected
	AttrApprovalBy = "approval_by" // the approver's verified principal
	AttrApprovalAt = "approval_at"
	// The run's task start, as ECS's task state change events give it
	// (dispatcher/taskevent.go; ECS's createdAt, pullStartedAt,
	// pullStoppedAt, startedAt): where a cold start's time goes.
	AttrTaskCreatedAt = "task_created_at"
	AttrPullStartedAt = "task_pull_started_at"
	AttrPullStoppedAt = "task_pull_stopped_at"
	AttrTaskStartedAt = "task_started_at"
	// A waiting run's request (queued, awaiting approval).
	AttrQueuedRequest = "queued_request"
	AttrQueuedAt      = "queued_at"
)

// An approver's decision, in AttrApproval.
const (
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
)

// The per-principal item of the run ledger: its key (AttrRunID) is
// PrincipalPrefix + the principal's key (the role ARN of an assumed role,
// whatever the session; an IAM user's ARN), never a run id. It holds the
// principal's open runs as a map run id → when the slot expires (epoch
// seconds), and a version for optimistic updates.
const (
	PrincipalPrefix = "principal#"
	AttrOpenRuns    = "open_runs"
	AttrVersion     = "version"
)

// A concurrency group's slots (docs/DISPATCHER.md, "Concurrency"): an item
// of the run ledger whose key is SlotKeyPrefix + group.
const (
	SlotKeyPrefix   = "slot#"
	AttrSlotHolders = "holders"      // M: run id → since (RFC 3339)
	AttrSlotWaiting = "waiting"      // L of S: waiting run ids, oldest first
	AttrSlotVersion = "slot_version" // N: compare-and-set counter
	slotsItemStatus = "slots"        // the status attribute of a slots item (not a run status)
)

// An idempotency key's owner (issue 24): an item of the run ledger whose
// key is KeyPrefix + the idempotency key. The first run that uses a key
// makes its verified owner (identity.Principal.Owner: the role of an
// assumed role, whatever the session; an IAM user) the key's; a run of
// another owner with that key is refused (protocol.RejectKeyInUse), so
// that attach --key, which looks among its caller's own runs, and every
// reader of the key name one owner's runs. The item expires with the runs.
const (
	KeyPrefix    = "key#"
	AttrKeyOwner = "key_owner"
)

// The run ledger's history index (issue 17): a global secondary index with
// AttrHistory as partition key and AttrRunID as sort key. The dispatcher
// sets AttrHistory to HistoryValue on every run it claims, so the index
// holds every run in one partition, in run id order, which is the order of
// the run ids' times (ULIDs). `deploy-trigger runs` reads recent runs with a
// Query on it (newest first, a run id range for a time range) and `show`
// one run with a Query on partition and run id: readers never Scan and need
// no permission on the table itself. Deploy runs come at a rate far below
// one partition's limits (1,000 writes/s).
const (
	HistoryIndex = "history"
	AttrHistory  = "history"
	HistoryValue = "run"
)
