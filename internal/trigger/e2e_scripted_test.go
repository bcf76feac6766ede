package trigger

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestScriptedJobExitCodePassesThrough(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website", "version=1.4.2")
	req := b.request(ctx)
	if req == nil {
		t.Fatal("no request")
	}
	if req.Job != "website" || req.Params["version"] != "1.4.2" || req.Kind != protocol.KindRun {
		t.Fatalf("request = %+v", req)
	}
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"))
	b.send(ctx, url, req.RunID, started(1, 5), output(2, out("hello"), errl("warn")))
	b.send(ctx, url, req.RunID, output(3, out("bye")), exitRec(4, 3, protocol.ReasonCompleted))
	err := tr.wait(t, 20*time.Second)
	if got := exitcode.Code(err); got != 3 {
		t.Fatalf("exit code = %d (%v), want 3\nstderr:\n%s", got, err, tr.stderr)
	}
	if got, want := tr.stdout.String(), "hello\nbye\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	rel := b.request(ctx)
	if rel == nil || rel.Kind != protocol.KindRelease || rel.RunID != req.RunID {
		t.Errorf("release = %+v", rel)
	}
}

func TestScriptedRejected(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "nosuch")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, rejected(protocol.RejectUnknownJob, `job "nosuch" is not in the catalogue`))
	err := tr.wait(t, 20*time.Second)
	if got := exitcode.Code(err); got != exitcode.Rejected {
		t.Fatalf("exit code = %d (%v), want 241", got, err)
	}
	t.Log(tr.stderr.String())
}

// Records that arrive duplicated and out of order print once, in order.
func TestScriptedDuplicatesAndReorder(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	id := req.RunID
	b.send(ctx, url, id, output(3, out("three"), errl("three-err")))
	b.send(ctx, url, id, accepted("123456789012"))
	b.send(ctx, url, id, output(2, out("two")))
	b.send(ctx, url, id, output(3, out("three"), errl("three-err")))
	b.send(ctx, url, id, started(1, 5), output(2, out("two")))
	b.send(ctx, url, id, accepted("123456789012"))
	b.send(ctx, url, id, exitRec(6, 0, protocol.ReasonCompleted))
	b.send(ctx, url, id, output(5, out("five")))
	body, _ := protocol.EncodeMessageGzip([]protocol.Record{output(4, out("four")), output(5, out("five"))})
	b.sendRaw(ctx, url, id, string(body))
	b.send(ctx, url, id, output(2, out("two")))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != 0 {
		t.Fatalf("code %d (%v)\n%s", code, err, tr.stderr)
	}
	if got, want := tr.stdout.String(), "two\nthree\nfour\nfive\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got := strings.Count(tr.stderr.String(), "three-err"); got != 1 {
		t.Errorf("stderr has three-err %d times:\n%s", got, tr.stderr)
	}
	if got := strings.Count(tr.stderr.String(), "accepted:"); got != 1 {
		t.Errorf("accepted shown %d times", got)
	}
}

// A run that nobody answers ends at the start timeout with 246 and says
// what was last known.
func TestScriptedStartTimeout(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begin := time.Now()
	tr := startTrigger(ctx, b.env(), nil, "--start-timeout", "2s", "website")
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.StartTimeout {
		t.Fatalf("code %d (%v)", code, err)
	}
	if el := time.Since(begin); el < 2*time.Second || el > 8*time.Second {
		t.Errorf("gave up after %s, want about 2s", el)
	}
	if !strings.Contains(err.Error(), "within 2s: the broker did not answer") || !strings.Contains(err.Error(), "proof of identity") {
		t.Errorf("message: %v", err)
	}
}

// The queue exists and the task is accepted, but the runner never reports.
func TestScriptedRunnerNeverStarts(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "--start-timeout", "2s", "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), task(2, "PENDING", "", ""))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.StartTimeout || !strings.Contains(err.Error(), "the task was last PENDING and the runner never reported") {
		t.Fatalf("code %d (%v)", code, err)
	}
}

func TestScriptedTaskFailedToStart(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"))
	b.send(ctx, url, req.RunID, task(1, "PROVISIONING", "", ""), task(3, "STOPPED", "TaskFailedToStart", "CannotPullContainerError: image not found"))
	b.send(ctx, url, req.RunID, task(2, "PENDING", "", "")) // older: ignored
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.StartFailed || !strings.Contains(err.Error(), "TaskFailedToStart: CannotPullContainerError: image not found") {
		t.Fatalf("code %d (%v)", code, err)
	}
}

// The task stops after running, the runner's records stop mid-way: 243
// with ECS's reason, after printing what came.
func TestScriptedTaskStoppedWithoutExit(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), task(1, "RUNNING", "", ""), started(1, 5), output(2, out("working")))
	b.send(ctx, url, req.RunID, output(4, out("after a gap")), task(2, "STOPPED", "EssentialContainerExited", "OutOfMemoryError: Container killed due to memory usage"))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.LostRunner || !strings.Contains(err.Error(), "OutOfMemoryError") {
		t.Fatalf("code %d (%v)", code, err)
	}
	if got := tr.stdout.String(); got != "working\nafter a gap\n" {
		t.Errorf("stdout %q", got)
	}
	if !strings.Contains(tr.stderr.String(), "runner records 3–3 never arrived") {
		t.Errorf("no warning about the gap:\n%s", tr.stderr)
	}
}

// ECS's STOPPED (the container exited 3) arrives before every runner
// record, as when the receive that took them lost its answer and they came
// back after their visibility timeout: the trigger waits for the exit record
// instead of declaring a failed start, prints everything and exits 3.
func TestScriptedStoppedBeforeTheRunnerRecords(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	stopped := task(4, "STOPPED", "EssentialContainerExited", "Essential container in task exited")
	three := 3
	stopped.Task.ExitCode = &three
	b.send(ctx, url, req.RunID, stopped)
	time.Sleep(time.Second) // longer than the stop grace, shorter than exitWait
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), output(2, out("late but whole")), exitRec(3, 3, protocol.ReasonCompleted))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != 3 {
		t.Fatalf("code %d (%v), want the job's 3", code, err)
	}
	if got := tr.stdout.String(); got != "late but whole\n" {
		t.Errorf("stdout %q", got)
	}
}

// A message holding a piece whose base64 is broken still delivers its other
// records: the good lines print, the bad piece is skipped with a warning, and
// the exit record in the same message ends the run with the job's code.
func TestScriptedBadPieceKeepsTheRun(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5))
	b.sendRaw(ctx, url, req.RunID, `{"v":1,"records":[{"type":"output","src":"runner","seq":2,"t":"2026-11-22T10:00:00Z","output":{"lines":[{"s":"out","d":0,"x":"good"},{"s":"out","d":0,"b":"***"}]}},`+
		`{"type":"exit","src":"runner","seq":3,"t":"2026-11-22T10:00:01Z","exit":{"code":3,"reason":"completed","duration_ms":1,"lines":2,"bytes":4}}]}`)
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != 3 {
		t.Fatalf("code %d (%v), want the job's 3", code, err)
	}
	if got := tr.stdout.String(); got != "good\n" {
		t.Errorf("stdout %q", got)
	}
	if !strings.Contains(tr.stderr.String(), "skipped line piece") {
		t.Errorf("no warning about the bad piece:\n%s", tr.stderr)
	}
}

// The dispatcher saw the cancel before the run request and answers the run
// with a "cancelled" rejection: the run ends as cancelled (245), not as a
// rejected request (241).
func TestScriptedCancelledBeforeTheBrokerStartedIt(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, rejected(protocol.RejectCancelled, "the run was cancelled before the broker handled its request; nothing was launched"))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Cancelled || !strings.Contains(err.Error(), "nothing was launched") {
		t.Fatalf("code %d (%v), want %d", code, err, exitcode.Cancelled)
	}
}

func TestScriptedLostHeartbeat(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "--missed-heartbeats", "2", "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 1))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.LostRunner || !strings.Contains(err.Error(), "no heartbeat for 2s") {
		t.Fatalf("code %d (%v)", code, err)
	}
}

// accepted in another account than the topic's: stop, cancel, 248.
func TestScriptedWrongAccount(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("999999999999"))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Safety || !strings.Contains(err.Error(), "accepted the run in account 999999999999, but 123456789012 was expected") {
		t.Fatalf("code %d (%v)", code, err)
	}
	if c := b.request(ctx); c == nil || c.Kind != protocol.KindCancel || c.RunID != req.RunID {
		t.Fatalf("want a cancel request, got %+v", c)
	}
}

// The first signal publishes cancel and keeps tailing to the exit record;
// the run ends with 245.
func TestScriptedCancelOnSignal(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), output(2, out("working")))
	waitFor(t, func() bool { return strings.Contains(tr.stdout.String(), "working") })
	tr.signals <- os.Interrupt
	c := b.request(ctx)
	if c == nil || c.Kind != protocol.KindCancel || c.RunID != req.RunID || !c.ExpiresAt.After(c.RequestedAt) {
		t.Fatalf("want a cancel request, got %+v", c)
	}
	b.send(ctx, url, req.RunID, output(3, out("got SIGTERM, cleaning up")))
	e := exitRec(4, -1, protocol.ReasonCancelled)
	e.Exit.Signal = 15 // SIGTERM
	b.send(ctx, url, req.RunID, e)
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != exitcode.Cancelled {
		t.Fatalf("code %d (%v)", code, err)
	}
	if got := tr.stdout.String(); got != "working\ngot SIGTERM, cleaning up\n" {
		t.Errorf("stdout %q", got)
	}
	if r := b.request(ctx); r == nil || r.Kind != protocol.KindRelease {
		t.Errorf("want release, got %+v", r)
	}
}

// A second signal leaves at once.
func TestScriptedSecondSignalLeaves(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env(), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5))
	waitFor(t, func() bool { return strings.Contains(tr.stderr.String(), "job started") })
	tr.signals <- os.Interrupt
	tr.signals <- os.Interrupt
	err := tr.wait(t, 10*time.Second)
	if code := codeOf(err); code != exitcode.Cancelled || !strings.Contains(err.Error(), "left at once") {
		t.Fatalf("code %d (%v)", code, err)
	}
}

// GitHub mode writes GITHUB_OUTPUT and GITHUB_STEP_SUMMARY for real.
func TestScriptedGitHubFiles(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	outPath, sumPath := filepath.Join(dir, "github_output"), filepath.Join(dir, "step_summary")
	os.WriteFile(outPath, []byte("earlier=1\n"), 0o644)
	tr := startTrigger(ctx, b.env("GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+outPath, "GITHUB_STEP_SUMMARY="+sumPath,
		"GITHUB_REPOSITORY=acme/app", "GITHUB_RUN_ID=77", "GITHUB_REF=refs/heads/main"), nil, "website", "version=2")
	req := b.request(ctx)
	if req.Requester.CI != "github-actions" || req.Requester.RunURL != "https://github.com/acme/app/actions/runs/77" {
		t.Errorf("requester %+v", req.Requester)
	}
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), output(2, out("::add-mask::oops")), exitRec(3, 7, protocol.ReasonCompleted))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != 7 {
		t.Fatalf("code %d (%v)", code, err)
	}
	got, _ := os.ReadFile(outPath)
	want := "earlier=1\nrun-id=" + req.RunID + "\nexit-code=7\noutcome=failed\ntask-arn=arn:aws:ecs:us-east-1:123456789012:task/broker/abc\nrequested-by=arn:aws:sts::111122223333:assumed-role/github-deployer/gha-acme-app-1234\noutputs={}\n"
	if string(got) != want {
		t.Errorf("GITHUB_OUTPUT = %q, want %q", got, want)
	}
	sum, _ := os.ReadFile(sumPath)
	for _, s := range []string{"| Outcome | failed (exit code 7) |", "| Run id | `" + req.RunID + "` |", "| Parameters | `version=2` |"} {
		if !strings.Contains(string(sum), s) {
			t.Errorf("summary lacks %q:\n%s", s, sum)
		}
	}
	stdout := tr.stdout.String()
	i, j := strings.Index(stdout, "::stop-commands::"), strings.Index(stdout, "::add-mask::oops")
	if i < 0 || j < i || !strings.Contains(stdout[j:], "\n::error title=deploy-trigger::job website failed with exit code 7") {
		t.Errorf("job output not fenced by stop-commands, or no ::error:::\n%s", stdout)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}

// --result-file gets the run's result as JSON in any output mode, also when
// the broker refuses the run.
func TestScriptedResultFile(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "result.json")
	tr := startTrigger(ctx, b.env("DEPLOY_TRIGGER_RESULT_FILE="+path), nil, "website", "version=2")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), exitRec(2, 3, protocol.ReasonCompleted))
	if code := codeOf(tr.wait(t, 20*time.Second)); code != 3 {
		t.Fatalf("code %d", code)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("result file is not JSON: %v\n%s", err, raw)
	}
	for k, want := range map[string]any{"run_id": req.RunID, "outcome": "failed", "exit_code": 3.0,
		"task_arn": "arn:aws:ecs:us-east-1:123456789012:task/broker/abc", "job": "website"} {
		if got[k] != want {
			t.Errorf("result file %s = %v, want %v\n%s", k, got[k], want, raw)
		}
	}

	// A usage error before anything is published still leaves a result.
	path2 := filepath.Join(t.TempDir(), "result.json")
	tr2 := startTrigger(ctx, b.env("DEPLOY_TRIGGER_RESULT_FILE="+path2), nil, "website", "not-a-pair")
	if code := codeOf(tr2.wait(t, 20*time.Second)); code != exitcode.Usage {
		t.Fatalf("code %d", code)
	}
	raw, _ = os.ReadFile(path2)
	if !strings.Contains(string(raw), `"outcome": "usage"`) || !strings.Contains(string(raw), `"exit_code": 240`) {
		t.Errorf("result file after a usage error:\n%s", raw)
	}
}

// An environment with confirm: true refuses without a terminal (248,
// nothing published) unless --yes is given, which it then mentions.
func TestScriptedConfirmWithoutTerminal(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte("environments:\n  production:\n    topic_arn: "+b.topicARN+"\n    confirm: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := b.env("DEPLOY_TRIGGER_TOPIC_ARN=")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, env, nil, "--environments", envFile, "--env", "production", "website")
	err := tr.wait(t, 20*time.Second)
	if got := exitcode.Code(err); got != exitcode.Safety {
		t.Fatalf("exit code = %d (%v), want 248\nstderr:\n%s", got, err, tr.stderr)
	}
	if !strings.Contains(tr.stderr.String(), "stdin is not a terminal: pass --yes") {
		t.Errorf("stderr:\n%s", tr.stderr)
	}
	qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
	defer qcancel()
	if r := b.tryRequest(qctx); r != nil {
		t.Fatalf("a request was published: %+v", r)
	}

	tr = startTrigger(ctx, env, nil, "--environments", envFile, "--env", "production", "--yes", "website")
	req := b.request(ctx)
	if req == nil {
		t.Fatal("no request with --yes")
	}
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"), started(1, 5), exitRec(2, 0, protocol.ReasonCompleted))
	if err := tr.wait(t, 20*time.Second); err != nil {
		t.Fatalf("with --yes: %v\nstderr:\n%s", err, tr.stderr)
	}
	if !strings.Contains(tr.stderr.String(), "asks for confirmation: skipped (--yes)") {
		t.Errorf("--yes is not mentioned:\n%s", tr.stderr)
	}
}

// Review finding 2: the job can send records to its own queue. A forged
// ECS record whose stop reason holds a line break is refused as malformed
// (a notice, on one line): it neither starts a workflow command nor ends or
// loses the run, which ends with the real exit record.
func TestScriptedForgedRecordCannotInjectCommands(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := startTrigger(ctx, b.env("GITHUB_ACTIONS=true"), nil, "website")
	req := b.request(ctx)
	url := b.queue(ctx, req.RunID)
	b.send(ctx, url, req.RunID, accepted("123456789012"))
	b.sendRaw(ctx, url, req.RunID, `{"v":1,"records":[{"type":"task","src":"ecs","seq":9,"t":"2026-11-22T10:00:00Z","task":{"task_arn":"a","status":"STOPPED","stop_code":"x","stopped_reason":"x\n::error::forged\n::add-mask::deploy"}}]}`)
	b.send(ctx, url, req.RunID, started(1, 5), output(2, out("hello")), exitRec(3, 4, protocol.ReasonCompleted))
	err := tr.wait(t, 20*time.Second)
	if code := codeOf(err); code != 4 {
		t.Fatalf("code %d (%v), want the job's 4\nstdout:\n%s", code, err, tr.stdout)
	}
	for _, l := range strings.Split(tr.stdout.String()+tr.stderr.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "::error::") || strings.HasPrefix(strings.TrimSpace(l), "::add-mask::") {
			t.Errorf("a forged workflow command reached the log: %q\n%s", l, tr.stdout)
		}
	}
	if !strings.Contains(tr.stdout.String(), "ignoring a feedback message that is not valid") {
		t.Errorf("no notice of the refused message:\n%s", tr.stdout)
	}
}
