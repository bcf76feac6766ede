package localbroker

import (
	"sort"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The statements that keep everyone but the broker off a warm runner's
// inbox in AWS, mirrored narrowly for local mode's endpoint (moto
// evaluates no IAM): the job guard's NeverTouchWarmInboxes (a job's
// deployment session may do nothing on an inbox), and the inbox policy's
// OnlyDispatcherWritesInbox and OnlyRunnersReadInbox
// (dispatcher/inbox.go), from the same lists. The dispatcher calls the emulator directly, not
// through this endpoint, so no key here may write to an inbox.

// inboxWriteOps and inboxReadOps are the SQS operations of
// protocol.InboxWriteActions and protocol.InboxReadActions (a batch is
// authorised as its single action).
var inboxWriteOps, inboxReadOps = sqsOps(protocol.InboxWriteActions), sqsOps(protocol.InboxReadActions)

func sqsOps(actions []string) map[string]bool {
	ops := map[string]bool{}
	for _, a := range actions {
		op := strings.TrimPrefix(a, "sqs:")
		ops[op] = true
		switch op {
		case "SendMessage", "DeleteMessage", "ChangeMessageVisibility":
			ops[op+"Batch"] = true
		}
	}
	return ops
}

// inboxDenied names the statement that denies key op on the inbox the
// request names ("" when none does, or the request names no inbox).
func (k *keyring) inboxDenied(key endpointKey, svc, op string, params map[string]string) string {
	if svc != "sqs" || k.broker == "" {
		return ""
	}
	if !protocol.IsInboxName(k.broker, queueNamed(params)) {
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

// InboxDeniedOps lists the SQS operations local mode refuses on an inbox to
// every key that calls through its endpoint (the writes): the stack's
// tests check it covers what the runners' guard denies there.
func InboxDeniedOps() []string {
	ops := make([]string, 0, len(inboxWriteOps))
	for op := range inboxWriteOps {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}
