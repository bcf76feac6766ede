package dispatcher

import (
	"testing"
	"time"
)

// An event's start times are read as ECS writes them (ISO 8601, UTC,
// milliseconds); one that does not parse reads as absent, and the others
// are kept.
func TestTaskStartOfAnEvent(t *testing.T) {
	ts := taskDetail{CreatedAt: "2026-12-06T05:00:00.123Z", PullStartedAt: "yesterday", StartedAt: "2026-12-06T05:00:30.5Z"}.taskStart()
	if want := time.Date(2026, 12, 6, 5, 0, 0, 123e6, time.UTC); !ts.Created.Equal(want) {
		t.Errorf("createdAt read as %v, want %v", ts.Created, want)
	}
	if !ts.PullStarted.IsZero() || !ts.PullStopped.IsZero() || ts.Started.IsZero() {
		t.Errorf("task start %+v: want no pull times and the start", ts)
	}
}
