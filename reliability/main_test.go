// Package reliability is the reliability and security suite: the real
// binaries through the local broker with faults injected between them and
// the emulator, runners killed mid-stream, tasks that never start, requests
// delivered more than once, concurrent runs, and hostile requests. Each test
// logs its figures as "RESULT name=value …" lines; docs/RELIABILITY.md
// collects them with the commands that reproduce them.
package reliability

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

var bins e2etest.Bins

func TestMain(m *testing.M) { e2etest.Main(m, &bins) }

const configPath = "testdata/broker.yaml"

// signedRunRequest is a request to run job with params (nil: none), signed
// as local mode's own identity (a session of role ci) and ready to publish
// to b's topic: its run ID and its JSON body.
func signedRunRequest(t *testing.T, b *localbroker.Broker, job string, params map[string]string) (runID, body string) {
	t.Helper()
	now := time.Now().UTC()
	req := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: job, Params: params,
		RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute), Requester: &protocol.Requester{CI: "local", Actor: "test"}}
	if err := b.Sign(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return req.RunID, string(raw)
}
