package localbroker

import (
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The statements that keep everyone but the broker off a warm runner's
// inbox in AWS, mirrored narrowly for local mode's endpoint (moto
// evaluates no IAM): the job guard's NeverTouchWarmInboxes (a job's
// deployment session may do nothing on an inbox), and the inbox policy's
// OnlyDispatcherWritesInbox and OnlyRunnersReadInbox
// (dispatcher/inbox.go). The dispatcher calls the emulator directly, not
// through this endpoint, so no key here may write to an inbox.

// inboxWriteOps and inboxReadOps are the SQS operations of
// dispatcher.InboxWriteActions and dispatcher.InboxReadActions (a batch is
// authorised as its single action).
var (
	inboxWriteOps = map[string]bool{"SendMessage": true, "SendMessageBatch": true, "DeleteQueue": true, "SetQueueAttributes": true,
		"AddPermission": true, "RemovePermission": true, "TagQueue": true, "UntagQueue": true, "PurgeQueue": true}
	inboxReadOps = map[string]bool{"ReceiveMessage": true, "DeleteMessage": true, "DeleteMessageBatch": true,
		"ChangeMessageVisibility": true, "ChangeMessageVisibilityBatch": true, "GetQueueAttributes": true}
)

// inboxDenied names the statement that denies key op on the inbox the
// request names ("" when none does, or the request names no inbox).
func (k *keyring) inboxDenied(key endpointKey, svc, op string, params map[string]string) string {
	if svc != "sqs" || k.broker == "" {
		return ""
	}
	u := params["QueueUrl"]
	if u == "" {
		u = params["QueueName"]
	}
	if !protocol.IsInboxName(k.broker, u[strings.LastIndex(u, "/")+1:]) {
		return ""
	}
	switch {
	case key.job:
		return "broker-guard's NeverTouchWarmInboxes"
	case inboxWriteOps[op]:
		return "the inbox policy's OnlyDispatcherWritesInbox"
	case inboxReadOps[op] && !key.runner:
		return "the inbox policy's OnlyRunnersReadInbox"
	}
	return ""
}
