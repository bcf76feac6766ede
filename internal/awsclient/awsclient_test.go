package awsclient

import (
	"testing"
	"time"
)

func TestJitterBackoffStaysWithinItsCeiling(t *testing.T) {
	b := jitterBackoff{base: 100 * time.Millisecond, max: 5 * time.Second}
	for attempt := 0; attempt < 40; attempt++ {
		ceil := 5 * time.Second
		if attempt < 6 {
			ceil = (100 * time.Millisecond) << uint(attempt)
		}
		var largest time.Duration
		for i := 0; i < 200; i++ {
			d, err := b.BackoffDelay(attempt, nil)
			if err != nil || d < 0 || d > ceil {
				t.Fatalf("attempt %d: delay %v (err %v) outside [0, %v]", attempt, d, err, ceil)
			}
			largest = max(largest, d)
		}
		if largest < ceil/4 {
			t.Fatalf("attempt %d: 200 delays all below %v; the jitter does not spread up to %v", attempt, ceil/4, ceil)
		}
	}
}
