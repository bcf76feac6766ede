package trigger

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// A run of a job with warm runners that found none free says so in one
// status line; a run a warm runner took says that on its accepted line; a
// job without warm runners prints as before.
func TestWarmStatusLines(t *testing.T) {
	for _, c := range []struct {
		name      string
		acc       protocol.Accepted
		want, not string
	}{
		{"cold fallback", protocol.Accepted{Start: protocol.StartCold, Warm: 2, WarmBusy: 2},
			"no warm runner of website was free (2 busy): started a new task, expect a cold start", "on a warm runner"},
		{"warm", protocol.Accepted{Start: protocol.StartWarm, Warm: 2, WarmBusy: 1}, "; on a warm runner", "no warm runner"},
		{"no warm runners", protocol.Accepted{}, "accepted: task", "warm"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			w := &watch{set: newApp(func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr, nil).watchSettings(),
				cfg: &Config{}, out: newPlainPrinter(&stdout, &stderr, false, false), openLine: map[protocol.Stream]bool{}, expect: "111122223333"}
			acc := c.acc
			acc.Job, acc.TaskARN, acc.Account = "website", "arn:aws:ecs:eu-west-1:111122223333:task/c/1", "111122223333"
			if err := w.onRecord(context.Background(), protocol.Record{Type: protocol.TypeAccepted, Src: protocol.SourceDispatcher, Seq: 1, Time: time.Now(), Accepted: &acc}); err != nil {
				t.Fatal(err)
			}
			got := stdout.String() + stderr.String()
			if !strings.Contains(got, c.want) || strings.Contains(got, c.not) {
				t.Fatalf("output %q: want %q, not %q", got, c.want, c.not)
			}
		})
	}
}
