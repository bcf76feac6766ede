package protocol

// Names shared by the dispatcher, the CDK stack (infra) and local mode. They
// live here, beside the wire protocol, so that the processes, the stack and
// the emulator's provisioning cannot drift apart; infra imports this package
// (standard library only) rather than the dispatcher and its SDK clients.
// The dispatcher Lambda's environment variable names are in env.go.

// Task tags the dispatcher puts on every run task. The stack conditions the
// job roles' permissions on TagJob.
const (
	TagRunID     = "deploy-broker:run-id"
	TagJob       = "deploy-broker:job"
	TagRequester = "deploy-broker:requester"
	// TagRequesterPrincipal (run queues only) is the requester as
	// aws:PrincipalArn names it when its role has no path: the stack's
	// trigger role reads only the queues whose tag is its own ARN.
	TagRequesterPrincipal = "deploy-broker:requester-principal"
	TagCreatedAt          = "deploy-broker:created-at"
)

// Attribute names of the run ledger, the dispatcher's DynamoDB table (the
// item schema is documented in docs/DISPATCHER.md). The stack and local mode
// create the table with LedgerRunID as its partition key and LedgerExpiresAt
// as its TTL attribute.
const (
	LedgerRunID       = "run_id"
	LedgerStatus      = "status"
	LedgerJob         = "job"
	LedgerParams      = "params"
	LedgerRequester   = "requester"    // the claimed requester (Requester.String)
	LedgerRequestedBy = "requested_by" // the verified principal's ARN (proof of identity)
	LedgerCancelledBy = "cancelled_by" // the verified principal that cancelled the run
	// LedgerControlledBy is the allowed_principals session pattern that let
	// the run in, when only such a pattern did: cancel and release must
	// match it too (absent: any session of the requester's role).
	LedgerControlledBy = "controlled_by"
	LedgerRequestHash  = "request_hash"
	LedgerRequestedAt  = "requested_at"
	LedgerCreatedAt    = "created_at"
	LedgerExpiresAt    = "expires_at" // DynamoDB TTL, epoch seconds
	LedgerLeaseUntil   = "lease_until"
	LedgerAttempts     = "attempts"
	LedgerQueueURL     = "queue_url"
	LedgerTaskARN      = "task_arn"
	LedgerRejectCode   = "reject_code"
	LedgerReason       = "reason"
	LedgerNotifiedAt   = "notified_at"
	LedgerEndedAt      = "ended_at"
	LedgerStopCode     = "stop_code"
	LedgerStopReason   = "stopped_reason"
	LedgerExitCode     = "exit_code"
	LedgerCancelledAt  = "cancelled_at"
	LedgerCancelAsked  = "cancel_requested_at"
	LedgerReleasedAt   = "released_at"
	LedgerClaimToken   = "claim_token"
	// LedgerWriteToken is unique to one conditional update: when its answer
	// is lost and the SDK's retry fails the condition on that very write,
	// the writer finds its token and knows the change is its own.
	LedgerWriteToken = "write_token"
	LedgerSlot       = "slot" // the principal key whose open-run slot the run took (throttle)
	// LedgerIdempotencyKey is the run request's idempotency key, if any.
	LedgerIdempotencyKey = "idempotency_key"
	// LedgerOutputs holds the job's outputs, a JSON object by name, copied
	// from the run log when the task stops (dispatcher/outputs.go).
	LedgerOutputs = "outputs"
)

// The per-principal item of the run ledger: its key (LedgerRunID) is
// LedgerPrincipalPrefix + the principal's key (the role ARN of an assumed
// role, whatever the session; an IAM user's ARN), never a run id. It holds
// the principal's open runs as a map run id → when the slot expires (epoch
// seconds), and a version for optimistic updates.
const (
	LedgerPrincipalPrefix = "principal#"
	LedgerOpenRuns        = "open_runs"
	LedgerVersion         = "version"
)

// The run ledger's history index (issue 17): a global secondary index with
// LedgerHistory as partition key and LedgerRunID as sort key. The dispatcher
// sets LedgerHistory to LedgerHistoryValue on every run it claims, so the
// index holds every run in one partition, in run id order, which is the
// order of the run ids' times (ULIDs). `deploy-trigger runs` reads recent
// runs with a Query on it (newest first, a run id range for a time range)
// and `show` one run with a Query on partition and run id: readers never
// Scan and need no permission on the table itself. Deploy runs come at a
// rate far below one partition's limits (1,000 writes/s).
const (
	LedgerHistoryIndex = "history"
	LedgerHistory      = "history"
	LedgerHistoryValue = "run"
)
