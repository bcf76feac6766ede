package protocol

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// RunIDLength is the length of a run id: a ULID in Crockford base32.
const RunIDLength = 26

// NewRunID returns a fresh run id (a ULID) whose time part is now.
func NewRunID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// ValidateRunID checks that id is a canonical, upper-case ULID.
func ValidateRunID(id string) error {
	if len(id) != RunIDLength {
		return fmt.Errorf("run id %q must be a %d-character ULID, not %d characters", truncate(id, 40), RunIDLength, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U')) {
			return fmt.Errorf("run id %q has %q at position %d; a ULID uses upper-case Crockford base32 only", id, c, i+1)
		}
	}
	if id[0] > '7' {
		return fmt.Errorf("run id %q is not a valid ULID: it overflows 128 bits", id)
	}
	return nil
}

// RunIDTime returns the time encoded in a valid run id.
func RunIDTime(id string) (time.Time, error) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing run id %q: %w", id, err)
	}
	return ulid.Time(u.Time()).UTC(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// RunIDTimeString is the run id's time in RFC 3339, or "" if it has none.
func RunIDTimeString(id string) string {
	t, err := RunIDTime(id)
	if err != nil {
		return ""
	}
	return t.Format(time.RFC3339)
}
