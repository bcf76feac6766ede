package protocol

import (
	"strings"
	"testing"
	"time"
)

func TestIdempotencyKey(t *testing.T) {
	for _, k := range []string{"", "gha-4242-1-deploy", "jenkins/website/main:17", strings.Repeat("a", 128)} {
		if err := ValidateIdempotencyKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	for _, k := range []string{"-x", "a b", "a\n", strings.Repeat("a", 129), "ключ"} {
		if ValidateIdempotencyKey(k) == nil {
			t.Errorf("%q accepted", k)
		}
	}
	now := time.Now().UTC()
	r := &Request{V: Version, Kind: KindCancel, RunID: NewRunID(now), RequestedAt: now, ExpiresAt: now.Add(time.Minute), IdempotencyKey: "k"}
	if err := r.Validate(); err == nil {
		t.Error("a cancel request with an idempotency key was accepted")
	}
}
