package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

// TestHostileWarmJob (security review of issue 26): a job with two warm
// runners is hostile (testdata/hostilewarm). Run on a warm runner, it
// tries to read its runner's and the idle runners' environments, to take
// the next run's assignment from the other runner's inbox, to plant a
// forged one, purge, reconfigure or delete the inboxes, to read or write the
// run ledger (a warm pool whose slot's inbox is its own queue), list the
// broker cluster's tasks and publish a run request, and leaves a child
// in a session of its own to outlive its run. A second trusted identity
// (the trigger's CI session) sends a forged assignment to an idle runner's
// inbox. Then: every attack refused; the runner that ran the hostile run
// is spent (gone from the pool, never given a run again), nothing of the
// job's uid is left, and the next run goes to another runner, which runs
// the catalogue's command, not a planted one.
//
// What is proven: moto evaluates no IAM; local mode's endpoint mirrors the
// inbox policy's and the job guard's Denies (inboxmirror.go), so the
// refusals here are the mirror's (AccessDenied naming the statement). AWS's
// own are the stored policies' (dispatcher.InboxPolicy, jobguard.go),
// evaluated by iamcheck. The uid checks need root.
func TestHostileWarmJob(t *testing.T) {
	dir, err := os.MkdirTemp("", "hostilewarm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "hostilewarm")
	if out, err := exec.Command("go", "build", "-o", job, "./testdata/hostilewarm").CombinedOutput(); err != nil {
		t.Fatalf("building the hostile job: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`broker:
  name: hostile-warm
trusted_principals:
  - arn:aws:iam::111111111111:role/ci
runner:
  image: local/deploy-runner
  heartbeat: 1s
  grace: 2s
jobs:
  hostile:
    command: [%q, "hostile-warm"]
    timeout: 2m
    warm: 2
`, job)), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e2etest.StartBroker(t, bins, cfg, localbroker.Options{})
	ctx := context.Background()
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(dynamodb.NewFromConfig(awsCfg), b.Resources.LedgerTable, time.Hour)
	pool := func() ledger.WarmPool {
		p, err := l.GetWarm(ctx, "hostile")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	idle := func() map[string]ledger.WarmSlot {
		m := map[string]ledger.WarmSlot{}
		for id, s := range pool().Slots {
			if s.State == ledger.SlotIdle {
				m[id] = s
			}
		}
		return m
	}
	waitUntil(t, time.Minute, "two idle warm runners", func() bool { return len(idle()) == 2 })

	// A second trusted identity (the CI session deploy-trigger uses, at
	// local mode's endpoint) plants an assignment in an idle runner's inbox.
	env := map[string]string{}
	for _, kv := range b.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	ci := sqs.NewFromConfig(aws.Config{Region: b.Resources.Region, BaseEndpoint: aws.String(env["AWS_ENDPOINT_URL"]), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])})
	for id, s := range idle() {
		forged := fmt.Sprintf(`{"v":1,"slot":%q,"run_id":%q,"queue_url":"http://127.0.0.1/123456789012/x","job":"hostile","deadline":"2099-01-01T00:00:00Z","heartbeat":"1s","grace":"1s","argv":["/bin/sh","-c","echo FORGED-RUN"]}`,
			id, protocol.NewRunID(time.Now()))
		_, err := ci.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.Inbox), MessageBody: aws.String(forged)})
		if err == nil || !strings.Contains(err.Error(), "OnlyDispatcherWritesInbox") {
			t.Errorf("a second trusted identity sending an assignment to warm runner %s: %v, want AccessDenied (OnlyDispatcherWritesInbox)", id, err)
		}
		_, err = ci.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.Inbox)})
		if err == nil || !strings.Contains(err.Error(), "OnlyRunnersReadInbox") {
			t.Errorf("a second trusted identity reading warm runner %s's inbox: %v, want AccessDenied (OnlyRunnersReadInbox)", id, err)
		}
	}
	if n := len(idle()); n != 2 {
		t.Fatalf("after the second identity's attempts %d warm runners are idle, want 2", n)
	}

	result := filepath.Join(t.TempDir(), "result.json")
	r := e2etest.Trigger{Bins: bins}.Run(t, b, "--result-file", result, "hostile")
	t.Logf("job output:\n%s", r.Stdout)
	if r.Code != 3 || !strings.Contains(r.Stdout+r.Stderr, "on a warm runner") {
		t.Fatalf("trigger: exit %d (want the job's 3, on a warm runner)\n%s", r.Code, e2etest.Tail(r.Stderr, 20))
	}
	attacks := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "ATTACK" {
			attacks[f[1]] = f[2]
		}
	}
	want := []string{"warm-runner-variables-in-env", "read-own-runner-environ", "read-idle-runner-environ", "inbox-receive",
		"inbox-send-forged-assignment", "inbox-purge", "inbox-set-policy", "inbox-get-attributes", "inbox-delete",
		"ledger-read-pool", "ledger-write", "cluster-list-tasks", "topic-publish"}
	for _, a := range want {
		switch attacks[a] {
		case "refused":
		case "":
			t.Errorf("attack %s did not report", a)
		default:
			t.Errorf("attack %s succeeded", a)
		}
	}
	if !regexp.MustCompile(`INBOXES [1-9]`).MatchString(r.Stdout) {
		t.Errorf("the hostile job found no inbox: its inbox attacks proved nothing")
	}
	if strings.Contains(r.Stdout, "TOOK ") {
		t.Errorf("the hostile job took a message from an inbox")
	}
	var rf struct {
		RunID string `json:"run_id"`
	}
	res, _ := os.ReadFile(result)
	if err := json.Unmarshal(res, &rf); err != nil || rf.RunID == "" {
		t.Fatalf("result file %s: %v", res, err)
	}
	// The job holds the deployment role's session for its run, never the
	// warm runner's task role (which may read the job's inboxes).
	if id := regexp.MustCompile(`IDENTITY (\S+)`).FindStringSubmatch(r.Stdout); id == nil || !strings.HasSuffix(id[1], ":assumed-role/hostile-warm-hostile/"+rf.RunID) {
		t.Errorf("the warm run's job calls AWS as %v, want the deployment role's session for run %s", id, rf.RunID)
	}
	first, ok, err := l.Get(ctx, rf.RunID)
	if err != nil || !ok || first.WarmSlot == "" {
		t.Fatalf("the hostile run's ledger item: %+v %v %v, want a warm slot", first, ok, err)
	}
	// The spent runner: out of the pool, its runner gone, nothing of the
	// job's uid left (root only).
	waitUntil(t, time.Minute, "the spent warm runner to leave the pool", func() bool {
		_, there := pool().Slots[first.WarmSlot]
		return !there
	})
	waitUntil(t, time.Minute, "the spent warm runner's process to exit", func() bool {
		_, live := b.RunnerPID(first.WarmSlot)
		return !live
	})
	if m := regexp.MustCompile(`JOBUID (\d+)`).FindStringSubmatch(r.Stdout); m != nil && os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(m[1])
		if uid == 0 {
			t.Errorf("the job ran as root")
		}
		t.Cleanup(func() { killUIDForTest(uid) })
		if pids := uidProcs(uid); len(pids) > 0 {
			t.Errorf("after the warm run, processes %v of the job's uid %d remain (the lingering child)", pids, uid)
		}
	}

	// The next run: another runner, the catalogue's command (the job
	// reports its own run id: not a forged one).
	waitUntil(t, time.Minute, "two idle warm runners again", func() bool { return len(idle()) == 2 })
	result2 := filepath.Join(t.TempDir(), "result2.json")
	r2 := e2etest.Trigger{Bins: bins}.Run(t, b, "--result-file", result2, "hostile")
	res2, _ := os.ReadFile(result2)
	var rf2 struct {
		RunID string `json:"run_id"`
	}
	_ = json.Unmarshal(res2, &rf2)
	second, _, _ := l.Get(ctx, rf2.RunID)
	if r2.Code != 3 || second.WarmSlot == "" || second.WarmSlot == first.WarmSlot || second.TaskARN == first.TaskARN ||
		!strings.Contains(r2.Stdout, "RUN "+rf2.RunID) || strings.Contains(r2.Stdout, "FORGED-RUN") {
		t.Errorf("second run: exit %d, slot %q task %q (first %q %q), output:\n%s", r2.Code, second.WarmSlot, second.TaskARN, first.WarmSlot, first.TaskARN, r2.Stdout)
	}
	t.Logf("RESULT scenario=hostile_warm_job attacks_tried=%d second_identity_refused=2 first_slot=%s second_slot=%s", len(want)+2, first.WarmSlot, second.WarmSlot)
}
