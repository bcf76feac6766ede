package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

// Local mode mirrors the job guard's run-queue Denies at its endpoint (moto
// evaluates no IAM): every SQS action the guard denies a job's role on the
// run queues, and the send NeverWriteToRunQueues denies its deployment
// role, must be refused there too, or local mode's hostile-job figures
// would say less than they claim.
func TestLocalModeMirrorsEveryRunQueueDeny(t *testing.T) {
	mirrored := localbroker.JobDeniedRunQueueOps()
	for _, action := range append([]string{"sqs:SendMessage"}, JobDeniedRunQueueActions...) {
		op, ok := strings.CutPrefix(action, "sqs:")
		if !ok {
			t.Errorf("%s is not an SQS action", action)
			continue
		}
		if !slices.Contains(mirrored, op) {
			t.Errorf("the job guard denies %s on run queues, but local mode's endpoint serves it to a job's session (internal/localbroker/sigcheck.go runQueueDenies)", action)
		}
	}
}

// Likewise for warm runners' inboxes: local mode's endpoint refuses a
// job's session every action on an inbox, and everyone but the dispatcher
// (which calls the emulator directly) every action the runners' guard
// denies them there (NeverWriteWarmInboxes).
func TestLocalModeMirrorsEveryInboxDeny(t *testing.T) {
	mirrored := localbroker.InboxDeniedOps()
	for _, action := range JobDeniedInboxActions {
		op, ok := strings.CutPrefix(action, "sqs:")
		if !ok || !slices.Contains(mirrored, op) {
			t.Errorf("the runners' guard denies %s on inboxes, but local mode's endpoint serves it (internal/localbroker/inboxmirror.go)", action)
		}
	}
}
