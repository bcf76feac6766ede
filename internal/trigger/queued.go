package trigger

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// describeQueued is the line for a queued record: the run waits for a
// concurrency slot; its start timeout keeps running.
func describeQueued(q *protocol.Queued) string {
	if len(q.Approvers) > 0 {
		id := q.RunID
		if protocol.ValidateRunID(id) != nil {
			id = "RUN_ID" // a broker from before run ids in queued records
		}
		return "awaiting approval by one of " + strings.Join(q.Approvers, ", ") + " (deploy-trigger approve " + id + ", or reject " + id + "; never the requester)"
	}
	group := strings.TrimPrefix(strings.TrimPrefix(q.Group, "job:"), "group:")
	s := fmt.Sprintf("queued: position %d for %s (concurrency %d)", q.Position, group, q.Concurrency)
	if q.Holder != "" {
		s += ", slot held by run " + q.Holder
		if q.HolderRequester != "" {
			s += " (" + q.HolderRequester
			if !q.HolderSince.IsZero() {
				s += ", since " + q.HolderSince.UTC().Format(time.RFC3339)
			}
			s += ")"
		}
	}
	return s + "; the run starts when a slot frees"
}
