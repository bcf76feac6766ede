package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

// TestHostileJobLeavesNothingBehind (security review, finding 3): a job
// starts a child in a session of its own (setsid) and exits; the child
// outlived the run and the broker, and read a later run's credentials from
// /proc/*/environ of the next job under the same uid. Once the run has
// ended (its runner is gone) no process of the job's uid remains. Needs
// root: without it, jobs run under the user's own uid.
func TestHostileJobLeavesNothingBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: local mode gives jobs uids of their own only when run as root (as CI does)")
	}
	dir, err := os.MkdirTemp("", "leftover-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the job's uid works there
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(cfg, []byte(`broker:
  name: leftover-broker
trusted_principals:
  - arn:aws:iam::111111111111:role/ci
runner:
  image: local/deploy-runner
  heartbeat: 1s
  grace: 2s
jobs:
  leftover:
    command: ["/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo JOBUID $(id -u)"]
    timeout: 2m
`), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2etest.StartBroker(t, bins, cfg, localbroker.Options{})
	result := filepath.Join(t.TempDir(), "result.json")
	r := e2etest.Trigger{Bins: bins}.Run(t, b, "--result-file", result, "leftover")
	m := regexp.MustCompile(`JOBUID (\d+)`).FindStringSubmatch(r.Stdout)
	if r.Code != 0 || m == nil {
		t.Fatalf("trigger: exit %d\n%s\n%s", r.Code, r.Stdout, e2etest.Tail(r.Stderr, 20))
	}
	uid, _ := strconv.Atoi(m[1])
	if uid == 0 {
		t.Fatalf("the job ran as root: the test proves nothing")
	}
	t.Cleanup(func() { killUIDForTest(uid) })
	var rf struct {
		RunID string `json:"run_id"`
	}
	res, _ := os.ReadFile(result)
	if err := json.Unmarshal(res, &rf); err != nil || rf.RunID == "" {
		t.Fatalf("result file %s: %v", res, err)
	}
	waitUntil(t, time.Minute, "the run's runner to be gone", func() bool { _, live := b.RunnerPID(rf.RunID); return !live })
	if pids := uidProcs(uid); len(pids) > 0 {
		t.Errorf("after the run, processes %v of the job's uid %d remain", pids, uid)
	}
	t.Logf("RESULT scenario=leftover_child uid=%d attacks_tried=1 refused=%d", uid, map[bool]int{true: 1}[len(uidProcs(uid)) == 0])
}

// uidProcs lists the live processes with uid among their uids.
func uidProcs(uid int) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		s, _ := os.ReadFile(d + "/status")
		st := string(s)
		if strings.Contains(st, "State:\tZ") {
			continue
		}
		for _, l := range strings.Split(st, "\n") {
			if f := strings.Fields(l); len(f) == 5 && f[0] == "Uid:" && (f[1] == fmt.Sprint(uid) || f[2] == fmt.Sprint(uid)) {
				pids = append(pids, filepath.Base(d))
			}
		}
	}
	return pids
}

// killUIDForTest cleans up what the old code left behind.
func killUIDForTest(uid int) {
	for _, p := range uidProcs(uid) {
		if pid, err := strconv.Atoi(p); err == nil {
			if pr, err := os.FindProcess(pid); err == nil {
				_ = pr.Kill()
			}
		}
	}
}
