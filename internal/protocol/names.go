package protocol

// Names shared by the dispatcher, the CDK stack (infra) and local mode
// (the run ledger's are in package ledger). They
// live here, beside the wire protocol, so that the processes, the stack and
// the emulator's provisioning cannot drift apart; infra imports this package
// (standard library only) rather than the dispatcher and its SDK clients.
// The dispatcher Lambda's environment variable names are in env.go.

// Task tags the dispatcher puts on every run task. The stack conditions the
// job roles' permissions on TagJob.
const (
	TagRunID = "deploy-broker:run-id"
	TagJob   = "deploy-broker:job"
	// TagWarmSlot names the warm slot of a slot's task and inbox (warm.go).
	TagWarmSlot  = "deploy-broker:warm-slot"
	TagRequester = "deploy-broker:requester"
	// TagRequesterPrincipal (run queues only) is the requester as
	// aws:PrincipalArn names it when its role has no path: the stack's
	// trigger role reads only the queues whose tag is its own ARN.
	TagRequesterPrincipal = "deploy-broker:requester-principal"
	TagCreatedAt          = "deploy-broker:created-at"
)

// ViewTableName is the name of the broker's published view table (issue
// 25: package brokerview reads and writes it): "<broker>-view". It is here,
// not in brokerview, so that the catalogue check (package config, which
// brokerview imports) refuses job policies that name it.
func ViewTableName(broker string) string { return broker + "-view" }
