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
