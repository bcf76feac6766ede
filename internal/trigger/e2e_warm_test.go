package trigger

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// warmPool reads the job's warm runners from the local broker's ledger.
func warmPool(t *testing.T, b *localbroker.Broker, job string) ledger.WarmPool {
	t.Helper()
	cfg, err := b.Server.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p, err := ledger.New(dynamodb.NewFromConfig(cfg), b.Resources.LedgerTable, time.Hour).GetWarm(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// idleSlots are the ids of the job's idle warm runners.
func idleSlots(t *testing.T, b *localbroker.Broker, job string) []string {
	return warmPool(t, b, job).Idle()
}

// A warm run end to end in local mode, through the real deploy-trigger and
// runner: the broker starts the catalogue's one warm runner of steps; the
// run is given to it (the trigger says so), its output and exit code come
// back as a cold run's do, the ledger records the run on the slot's task,
// and the spent runner is replaced by a new idle one.
func TestWarmRunEndToEnd(t *testing.T) {
	b, bin := startLocalWith(t, "testdata/broker-warm.yaml")
	waitFor(t, func() bool { return len(idleSlots(t, b, "steps")) == 1 })
	slot := idleSlots(t, b, "steps")[0]
	task := warmPool(t, b, "steps").Slots[slot].TaskARN

	resFile := filepath.Join(t.TempDir(), "result.json")
	cmd := triggerCmd(bin, b, "--result-file", resFile, "steps", "lines=4")
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeOf(t, waitExit(t, cmd, 60*time.Second, "after its warm run", &out)); code != 3 {
		t.Fatalf("exit code %d, want the job's 3:\n%s", code, out.String())
	}
	for _, want := range []string{"accepted: task " + task, "; on a warm runner", "step 1 out", "step 4 err"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "expect a cold start") {
		t.Errorf("a warm run says it starts cold:\n%s", out.String())
	}
	// The ledger: the run on the slot's task, ended with the job's code
	// and outputs (read from the run log by the task, as a cold run's),
	// and a replacement slot.
	var res struct {
		RunID string `json:"run_id"`
	}
	raw, _ := os.ReadFile(resFile)
	if err := json.Unmarshal(raw, &res); err != nil || res.RunID == "" {
		t.Fatalf("no run id in the result file %s: %v", raw, err)
	}
	awsCfg, err := b.Server.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(dynamodb.NewFromConfig(awsCfg), b.Resources.LedgerTable, time.Hour)
	waitFor(t, func() bool {
		it, ok, err := l.Get(context.Background(), res.RunID)
		return err == nil && ok && it.Status == ledger.Stopped
	})
	it, _, _ := l.Get(context.Background(), res.RunID)
	if it.WarmSlot != slot || it.TaskARN != task || it.ExitCode == nil || *it.ExitCode != 3 || it.Outputs["image"] != "app:4" {
		t.Errorf("ledger: slot %q task %q exit %v outputs %v; want slot %s, task %s, exit 3, image=app:4", it.WarmSlot, it.TaskARN, it.ExitCode, it.Outputs, slot, task)
	}
	// show says where the start went: the warm runner's own start.
	show := triggerCmd(bin, b, "show", res.RunID)
	shown, err := show.CombinedOutput()
	if err != nil || !strings.Contains(string(shown), "warm runner started (the run was given to it)") {
		t.Errorf("show %s (%v):\n%s", res.RunID, err, shown)
	}
	waitFor(t, func() bool {
		ids := idleSlots(t, b, "steps")
		_, spent := warmPool(t, b, "steps").Slots[slot]
		return len(ids) == 1 && ids[0] != slot && !spent
	})
	for _, r := range b.Runs() {
		if !strings.HasPrefix(r, "warm-") {
			t.Errorf("the agent started a task for %s: a warm run starts none of its own", r)
		}
	}

	// An idle warm runner dies (its task stopped under it): the agent's
	// STOPPED event frees the slot and a new runner takes its place.
	idle := idleSlots(t, b, "steps")[0]
	if _, err := ecs.NewFromConfig(awsCfg).StopTask(context.Background(), &ecs.StopTaskInput{Cluster: aws.String(b.Resources.ClusterARN),
		Task: aws.String(warmPool(t, b, "steps").Slots[idle].TaskARN), Reason: aws.String("test: an idle warm runner dies")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, dead := warmPool(t, b, "steps").Slots[idle]
		return !dead
	})
	// (It had run for seconds only: the sweep, not the event, starts the
	// next one, so that a runner that cannot wait does not loop.)
	if err := b.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ids := idleSlots(t, b, "steps")
		return len(ids) == 1 && ids[0] != idle
	})
}
