package protocol_test

import (
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestQueuedRecord(t *testing.T) {
	q := protocol.Record{Type: protocol.TypeQueued, Src: protocol.SourceDispatcher, Seq: 1764525600000, Time: t0,
		Queued: &protocol.Queued{Group: "job:migrate", Concurrency: 1, Position: 2, Holder: "01M8PTK38HAY06XJQ608BEMSKP", HolderRequester: "alice", HolderSince: t0}}
	b, err := protocol.EncodeMessage([]protocol.Record{q})
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.DecodeMessage(b)
	if err != nil || len(got) != 1 || got[0].Queued.Holder != q.Queued.Holder || got[0].Queued.Position != 2 || !got[0].Queued.HolderSince.Equal(t0) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// Only the dispatcher writes it.
	bad := `{"v":1,"records":[{"type":"queued","src":"runner","seq":2,"t":"2026-11-22T10:00:00Z","queued":{"group":"job:a","concurrency":1,"position":1}}]}`
	if _, err := protocol.DecodeMessage([]byte(bad)); err == nil || !strings.Contains(err.Error(), "queued") {
		t.Errorf("a runner's queued record decoded: %v", err)
	}
}
