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
	TagCreatedAt = "deploy-broker:created-at"
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
)
