package trigger

import (
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The error when the broker did not record a decision names it with a real
// word ("approveal" and "rejectal" before).
func TestNotRecordedWording(t *testing.T) {
	for kind, want := range map[protocol.Kind]string{protocol.KindApprove: "the approval of run R1", protocol.KindReject: "the rejection of run R1"} {
		msg := notRecorded(kind, "R1", "not_waiting", "the run is not waiting for approval").Error()
		if !strings.Contains(msg, want) {
			t.Errorf("%s: %q does not say %q", kind, msg, want)
		}
	}
}
