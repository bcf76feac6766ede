package trigger

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/identity"
)

// Every request deploy-trigger publishes carries a proof bound to it and to
// the topic, signed for the configured STS endpoint.
func TestPublishedRequestsCarryABoundProof(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "--start-timeout", "2s", "website", "version=1")
	req := b.request(ctx)
	p, exp, err := identity.RequestProof(req, b.topicARN)
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{Partition: "aws", Region: "us-east-1", Endpoint: b.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Check(p, exp); err != nil {
		t.Errorf("the run request's proof fails the broker's offline checks: %v", err)
	}
	var raw map[string]any
	_ = json.Unmarshal(req.Proof, &raw)
	if raw["url"] != b.srv.URL+"/" {
		t.Errorf("proof URL %v, want the endpoint override %s/", raw["url"], b.srv.URL)
	}
	_ = tr.wait(t, 20*time.Second)
	// The cancel sent at the start timeout is signed too.
	if c := b.request(ctx); c == nil || c.Kind != "cancel" || len(c.Proof) == 0 {
		t.Errorf("cancel %+v, want a signed cancel", c)
	}
}

// A clock far from AWS's is caught before publishing: the broker would
// refuse the proof without an answer.
func TestClockSkewIsCaughtBeforePublishing(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), func(a *app) {
		a.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	}, "website", "version=1")
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Usage || !strings.Contains(err.Error(), "this machine's clock is 10m") {
		t.Fatalf("code %d (%v), want 240 naming the clock", code, err)
	}
	short, done := context.WithTimeout(ctx, 2*time.Second)
	defer done()
	if r := b.tryRequest(short); r != nil {
		t.Errorf("a request was published: %+v", r)
	}
}
