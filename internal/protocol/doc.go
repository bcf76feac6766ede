// Package protocol is deploy-broker's wire protocol: requests of version 2
// (RequestVersion), feedback messages of version 1 (Version).
//
// Three kinds of document cross a trust boundary:
//
//   - A [Request] travels from deploy-trigger (the CI side) through the broker's
//     SNS topic to the dispatcher: "run this catalogue job", "cancel this run",
//     "release this run's queue".
//   - A [Message] travels back on the run's FIFO feedback queue: a batch of
//     [Record] values written by the dispatcher (accepted, rejected, task
//     lifecycle) and by the runner (started, output, heartbeat, exit).
//   - An [Assignment] travels from the dispatcher to a warm runner through
//     its inbox (warm.go): the one run that runner is to run.
//
// Every decoder here is strict: it enforces a size limit before parsing,
// rejects unknown fields, wrong types, trailing data and a wrong version, and
// validates the result, so a consumer never sees a half-understood document.
// Errors say what was wrong in one line that can be shown to a user.
package protocol

import "errors"

// Version is the version of feedback messages (the run queue's records).
const Version = 1

// RequestVersion is the version of requests. Version 2 added the proof of
// identity (Request.Proof): a version-1 request, from a deploy-trigger that
// predates it, carries no proof and is refused without an answer (a run
// queue is only ever made for a verified principal).
const RequestVersion = 2

// Size limits imposed by AWS and by this protocol.
const (
	// MaxRequestBytes is the largest request body: an SNS message is at most 256 KiB.
	MaxRequestBytes = 256 * 1024
	// MaxProofBytes bounds a request's proof of identity (identity.MaxProofSize).
	MaxProofBytes = 16 << 10
	// MaxMessageBytes is the largest feedback message body: an SQS message is at most 1 MiB,
	// and so is a whole SendMessageBatch request.
	MaxMessageBytes = 1024 * 1024
	// MaxRecordsPerMessage bounds the records a decoder accepts in one message.
	MaxRecordsPerMessage = 100_000
	// MaxDecompressedBytes bounds what a compressed message may expand to.
	MaxDecompressedBytes = 16 * MaxMessageBytes
)

// ErrTooLarge is wrapped by decoders when input exceeds its size limit.
var ErrTooLarge = errors.New("too large")
