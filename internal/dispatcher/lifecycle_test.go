package dispatcher_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// started runs the website job and returns its run id and task ARN.
func (e *env) started() (string, string) {
	e.t.Helper()
	r := e.request()
	if err := e.run(r); err != nil {
		e.t.Fatal(err)
	}
	arns := e.tasks(r.RunID)
	if len(arns) != 1 {
		e.t.Fatalf("%d tasks, want 1", len(arns))
	}
	return r.RunID, arns[0]
}

func TestCancelStopsTheTask(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	if err := e.short(protocol.KindCancel, runID); err != nil {
		t.Fatal(err)
	}
	task := e.describe(arn)
	reason := aws.ToString(task.StoppedReason)
	if aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(reason, "cancelled by "+e.id.ARN) || !strings.Contains(reason, runID) {
		t.Errorf("task is %s with reason %q, want STOPPED naming the requester", aws.ToString(task.LastStatus), reason)
	}
	if it := e.item(runID); it.Status != ledger.Accepted {
		t.Errorf("ledger status %s after cancel; the STOPPED event ends the run", it.Status)
	}
	if a := e.auditsOf(runID); a[len(a)-1]["decision"] != "cancelled" || a[len(a)-1]["task_arn"] != arn || a[len(a)-1]["reason"] != reason {
		t.Errorf("cancel audit = %v", a[len(a)-1])
	}

	// Unknown run ids are harmless: an id no run request could still use is
	// ignored.
	old := protocol.NewRunID(e.clock.Now().Add(-24 * time.Hour))
	if err := e.short(protocol.KindCancel, old); err != nil {
		t.Fatal(err)
	}
	if a := e.auditsOf(old); len(a) != 1 || a[0]["decision"] != "ignored" || a[0]["reason"] != "no such run" {
		t.Errorf("cancel of an unknown old run: audit %v", a)
	}
	// A cancel that overtakes its run request (the trigger gave up before
	// the dispatcher saw the request) closes the run id: the request, when
	// it comes, launches nothing.
	early := e.request()
	if err := e.short(protocol.KindCancel, early.RunID); err != nil {
		t.Fatal(err)
	}
	if a := e.auditsOf(early.RunID); len(a) != 1 || a[0]["decision"] != "cancelled" {
		t.Errorf("early cancel: audit %v", a)
	}
	if err := e.run(early); err != nil {
		t.Fatal(err)
	}
	if a := e.auditsOf(early.RunID); a[len(a)-1]["decision"] != "rejected" || !strings.Contains(a[len(a)-1]["reason"].(string), "cancelled before the broker handled its request") {
		t.Errorf("run request after an early cancel: audit %v", a[len(a)-1])
	}
	// The trigger still waiting gets its answer at once.
	if rec := e.only(early.RunID, protocol.TypeRejected); rec.Rejected.Code != protocol.RejectCancelled {
		t.Errorf("rejected record %+v, want code %q", rec.Rejected, protocol.RejectCancelled)
	}
	// A further delivery answers nothing twice.
	if err := e.run(early); err != nil {
		t.Fatal(err)
	}
	if a := e.auditsOf(early.RunID); a[len(a)-1]["decision"] != "duplicate" {
		t.Errorf("second delivery after an early cancel: audit %v", a[len(a)-1])
	}
	if n := len(e.tasks(early.RunID)); n != 0 {
		t.Errorf("a run cancelled before its request arrived started %d tasks", n)
	}
	// A rejected run has no task to stop.
	r := e.request(func(r *protocol.Request) { r.Job = "nope" })
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if err := e.short(protocol.KindCancel, r.RunID); err != nil {
		t.Fatal(err)
	}
	if a := e.auditsOf(r.RunID); a[len(a)-1]["decision"] != "ignored" {
		t.Errorf("cancel of a rejected run: audit %v", a[len(a)-1])
	}
}

func TestTaskEventsBecomeTaskRecords(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	url, _ := e.queueURL(runID)
	data := map[string]any{"TaskArn": arn, "StartedBy": runID}

	data["Version"] = 2
	if err := e.invoke(e.event("ecs-task-running.json", data)); err != nil {
		t.Fatal(err)
	}
	// ECS's RUNNING event carries the task's start: kept in the ledger.
	if ts := e.item(runID).TaskStart; ts.Created.IsZero() || ts.PullStarted.IsZero() || ts.PullStopped.IsZero() || ts.Started.IsZero() {
		t.Errorf("the ledger's task start after RUNNING: %+v, want every time", ts)
	}
	data["Version"] = 3
	ev := e.event("ecs-task-stopped-failed-to-start.json", data)
	for i := 0; i < 2; i++ { // EventBridge delivers at least once
		if err := e.invoke(ev); err != nil {
			t.Fatal(err)
		}
	}
	recs := e.records(runID)
	if len(recs) != 3 || recs[0].Type != protocol.TypeAccepted || recs[1].Type != protocol.TypeTask || recs[2].Type != protocol.TypeTask {
		t.Fatalf("records %+v, want accepted and two task records", recs)
	}
	running, stopped := recs[1], recs[2]
	if running.Src != protocol.SourceECS || running.Seq != 2 || running.Task.Status != "RUNNING" || running.Task.TaskARN != arn {
		t.Errorf("RUNNING record = %+v %+v", running, running.Task)
	}
	if stopped.Seq != 3 || stopped.Task.Status != "STOPPED" || stopped.Task.StopCode != "TaskFailedToStart" ||
		!strings.HasPrefix(stopped.Task.StoppedReason, "CannotPullContainerError: pull image manifest has been retried") || stopped.Task.ExitCode != nil {
		t.Errorf("STOPPED record = %+v %+v", stopped, stopped.Task)
	}
	it := e.item(runID)
	raw := e.rawItem(runID)
	if it.Status != ledger.Stopped || it.EndedAt.IsZero() || str(t, raw, ledger.AttrStopCode) != "TaskFailedToStart" ||
		!strings.HasPrefix(str(t, raw, ledger.AttrStopReason), "CannotPullContainerError") {
		t.Errorf("ledger after STOPPED: %+v", raw)
	}
	_ = url
}

func TestTaskExitCodeIsKept(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	if err := e.invoke(e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": arn, "StartedBy": runID, "Version": 5})); err != nil {
		t.Fatal(err)
	}
	recs := e.records(runID)
	last := recs[len(recs)-1]
	if last.Type != protocol.TypeTask || last.Task.StopCode != "EssentialContainerExited" || last.Task.ExitCode == nil || *last.Task.ExitCode != 3 {
		t.Fatalf("last record = %+v %+v", last, last.Task)
	}
	if got := str(t, e.rawItem(runID), ledger.AttrExitCode); got != "3" {
		t.Errorf("ledger exit_code = %q", got)
	}
}

func TestForeignTaskEventsAreIgnored(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	otherCluster := strings.Replace(e.res.ClusterARN, ":cluster/"+e.name, ":cluster/someone-else", 1)
	cases := map[string]map[string]any{
		"other cluster":         {"TaskArn": arn, "StartedBy": runID, "ClusterArn": otherCluster},
		"service task":          {"TaskArn": arn, "StartedBy": "ecs-svc/1234567890123456789"},
		"unknown run":           {"TaskArn": arn, "StartedBy": protocol.NewRunID(e.clock.Now())},
		"other task of the run": {"TaskArn": arn + "0", "StartedBy": runID},
		"no startedBy":          {"TaskArn": arn, "StartedBy": ""},
	}
	for name, data := range cases {
		if err := e.invoke(e.event("ecs-task-stopped-failed-to-start.json", data)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if recs := e.records(runID); len(recs) != 1 {
		t.Errorf("foreign events reached the run queue: %+v", recs)
	}
	if it := e.item(runID); it.Status != ledger.Accepted {
		t.Errorf("foreign events changed the ledger: %+v", it)
	}
}

func TestUnknownEventsAreIgnored(t *testing.T) {
	e := newEnv(t)
	for _, payload := range [][]byte{
		e.event("unknown-sqs-event.json", nil),
		e.event("unknown-ec2-event.json", nil),
		[]byte(`{}`), []byte(`[]`), []byte(`"hello"`), []byte(`null`), []byte(`{"Records":[]}`),
		[]byte(`{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"not json"}}]}`),
		[]byte(`{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":"not an object"}`),
		[]byte(`{"source":"aws.ecs","detail-type":"ECS Task State Change","time":"yesterday"}`),
	} {
		if err := e.invoke(payload); err != nil {
			t.Errorf("event %.60s: %v", payload, err)
		}
	}
	if e.queueCount() != 0 {
		t.Error("an unknown event created a queue")
	}
}

func TestReleaseDeletesTheQueue(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	if err := e.short(protocol.KindRelease, runID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(runID); ok {
		t.Error("queue still exists after release")
	}
	// Nobody watches a released run: one not known to have ended is stopped
	// (issue 14.5: the release may overtake the trigger's cancel).
	if task := e.describe(arn); aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(task.StoppedReason), "before its task ended") {
		t.Errorf("task %s %q after release, want STOPPED", aws.ToString(task.LastStatus), aws.ToString(task.StoppedReason))
	}
	if e.item(runID).Status != ledger.Accepted {
		t.Error("release changed the run's status")
	}
	// Releasing again, or an unknown run, is harmless.
	if err := e.short(protocol.KindRelease, runID); err != nil {
		t.Fatal(err)
	}
	if err := e.short(protocol.KindRelease, protocol.NewRunID(e.clock.Now())); err != nil {
		t.Fatal(err)
	}
	// A task event after release has nobody to tell.
	if err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": e.item(runID).TaskARN, "StartedBy": runID})); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	e := newEnv(t)
	ended, endedTask := e.started()                                     // ends now, swept after the 1 h retention
	rejected := e.request(func(r *protocol.Request) { r.Job = "nope" }) // rejected now: ended
	if err := e.run(rejected); err != nil {
		t.Fatal(err)
	}
	abandoned, _ := e.started() // never ends
	if err := e.invoke(e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": endedTask, "StartedBy": ended})); err != nil {
		t.Fatal(err)
	}
	sweep := e.event("scheduled-sweep.json", nil)
	// A rejected run's queue outlives its rejection by
	// rejected_queue_retention (5 min), not by the hour of queue_retention.
	e.clock.Add(4 * time.Minute)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(rejected.RunID); !ok {
		t.Fatal("the rejected run's queue went before the trigger had 5 min to read it")
	}
	e.clock.Add(46 * time.Minute)
	live, _ := e.started() // starts 50 min later: kept throughout

	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(rejected.RunID); ok {
		t.Error("the rejected run's queue is still there 50 min after its rejection")
	}
	if n := e.queueCount(); n != 4 {
		t.Fatalf("sweep within the retention left %d queues, want the 3 of runs that were not rejected and the requester's spare (spare.go)", n)
	}

	e.clock.Add(11 * time.Minute) // the first runs ended 61 min ago
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{ended: false, rejected.RunID: false, abandoned: true, live: true} {
		if _, ok := e.queueURL(id); ok != want {
			t.Errorf("after 61 min, queue of %s exists = %v, want %v", id, ok, want)
		}
	}

	// The run that never ended goes once it is older than any run could
	// last (the longest job timeout, 1 h, + 15 min request age + 1 h
	// retention), marked abandoned; the live run stays.
	e.clock.Add(75 * time.Minute)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(abandoned); ok {
		t.Error("queue of the abandoned run survived")
	}
	if _, ok := e.queueURL(live); !ok {
		t.Error("queue of the live run was swept")
	}
	if it := e.item(abandoned); it.Status != ledger.Abandoned || it.EndedAt.IsZero() {
		t.Errorf("abandoned run in the ledger: %+v", it)
	}
	if it := e.item(ended); it.Status != ledger.Stopped {
		t.Errorf("ended run's status changed by the sweep: %+v", it)
	}
	var swept []string
	for _, a := range e.audits() {
		if a["decision"] == "swept" {
			swept = append(swept, a["run_id"].(string))
		}
	}
	if len(swept) != 3 {
		t.Errorf("swept audit lines for %v, want 3", swept)
	}
}

// runTaskDirect starts a task for a run id behind the dispatcher's back, as
// an invocation that died right after RunTask would have.
func (e *env) runTaskDirect(runID string) string {
	e.t.Helper()
	out, err := e.ecs.RunTask(context.Background(), &ecs.RunTaskInput{
		Cluster: aws.String(e.res.ClusterARN), TaskDefinition: aws.String(e.name + "-website"),
		LaunchType: ecstypes.LaunchTypeFargate, StartedBy: aws.String(runID),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: e.res.Subnets[:1], SecurityGroups: e.res.SecurityGroups}},
	})
	if err != nil || len(out.Tasks) != 1 {
		e.t.Fatalf("RunTask: %v %+v", err, out)
	}
	return aws.ToString(out.Tasks[0].TaskArn)
}

// badDeleteSQS fails DeleteQueue for the queue of one run with a set error.
type badDeleteSQS struct {
	dispatcher.SQSAPI
	mu    sync.Mutex
	runID string
	err   error
}

func (b *badDeleteSQS) set(runID string, err error) {
	b.mu.Lock()
	b.runID, b.err = runID, err
	b.mu.Unlock()
}

func (b *badDeleteSQS) DeleteQueue(ctx context.Context, in *sqs.DeleteQueueInput, o ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error) {
	b.mu.Lock()
	runID, err := b.runID, b.err
	b.mu.Unlock()
	if runID != "" && strings.Contains(aws.ToString(in.QueueUrl), runID) {
		return nil, err
	}
	return b.SQSAPI.DeleteQueue(ctx, in, o...)
}

// One bad queue does not stop the sweep: the others are swept, and the pass
// reports an error (for Lambda to retry) only when a retry may help.
func TestSweepGoesOnPastABadQueue(t *testing.T) {
	bad := &badDeleteSQS{}
	e := newEnv(t, func(_ *dispatcher.Settings, c *dispatcher.Clients) { bad.SQSAPI = c.SQS; c.SQS = bad })
	var runs []string
	for i := 0; i < 3; i++ {
		r := e.request(func(r *protocol.Request) { r.Job = "nope" }) // rejected: ended now
		if err := e.run(r); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r.RunID)
	}
	e.clock.Add(61 * time.Minute) // past the 1 h queue retention
	sweep := e.event("scheduled-sweep.json", nil)

	// A throttled queue: the others go, and the pass fails so that Lambda
	// retries it.
	bad.set(runs[1], throttled())
	err := e.invoke(sweep)
	if err == nil || !strings.Contains(err.Error(), runs[1]) || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("sweep with a throttled queue: %v, want an error naming the run", err)
	}
	for i, id := range runs {
		if _, ok := e.queueURL(id); ok != (i == 1) {
			t.Errorf("queue of run %d exists = %v", i, ok)
		}
	}
	if !strings.Contains(e.logs.String(), `"msg":"sweep could not handle a run queue; going on with the next","run_id":"`+runs[1]) {
		t.Errorf("the failure was not logged")
	}

	// A refusal no retry changes is logged, not returned: one permanently
	// bad queue must not send every pass to the dead-letter queue.
	bad.set(runs[1], &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform sqs:DeleteQueue", Fault: smithy.FaultClient})
	if err := e.invoke(sweep); err != nil {
		t.Fatalf("sweep with a permanently bad queue failed: %v", err)
	}
	if _, ok := e.queueURL(runs[1]); !ok {
		t.Fatal("the queue that cannot be deleted is gone")
	}
	if n := strings.Count(e.logs.String(), `"retried":false`); n != 1 {
		t.Errorf("%d not-retried failures logged, want 1", n)
	}

	bad.set("", nil)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.queueURL(runs[1]); ok {
		t.Error("the queue survived once it could be deleted")
	}
}

// A release that overtakes its run request (SNS keeps no order; the
// trigger gave up at its start timeout) closes the run id: the request,
// arriving later while still valid, launches nothing.
func TestReleaseBeforeTheRunRequestClosesTheRun(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	if err := e.short(protocol.KindRelease, r.RunID); err != nil {
		t.Fatal(err)
	}
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if n := len(e.tasks(r.RunID)); n != 0 {
		t.Fatalf("a run released before its request arrived started %d tasks", n)
	}
	if it := e.item(r.RunID); it.Status != ledger.Cancelled {
		t.Errorf("ledger status %s, want cancelled", it.Status)
	}
}

// A release while the task is being launched keeps the queue for the launch
// and has the launch stop the task once it is started.
func TestReleaseDuringLaunchStopsTheTaskOnceStarted(t *testing.T) {
	e := newEnv(t)
	if _, task := e.shortDuringLaunch(protocol.KindRelease); aws.ToString(task.LastStatus) != "STOPPED" {
		t.Errorf("task %s, want stopped by the earlier release", aws.ToString(task.LastStatus))
	}
}

// An ECS stop reason reaches the CI side on one line, without control or
// format characters, and bounded: ECS quotes text the job controls.
func TestStopReasonIsCleanedAndBounded(t *testing.T) {
	e := newEnv(t)
	runID, arn := e.started()
	raw := e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": arn, "StartedBy": runID, "Version": 5})
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	hostile := "Essential container exited\x1b[2J\x1b]0;owned\x07 \u202eevil\u2066 \x00\r\nFAKE: deploy succeeded " + strings.Repeat("é", 3000)
	ev["detail"].(map[string]any)["stoppedReason"] = hostile
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.invoke(b); err != nil {
		t.Fatal(err)
	}
	recs := e.records(runID)
	got := recs[len(recs)-1].Task.StoppedReason
	if r, bad := protocol.FindControl(got); bad {
		t.Errorf("stop reason carries %s: %q", protocol.DescribeControl(r), got)
	}
	if len(got) > protocol.MaxStopReasonLength || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("stop reason of %d bytes (valid UTF-8 %v), want at most %d, cut with …", len(got), utf8.ValidString(got), protocol.MaxStopReasonLength)
	}
	if !strings.HasPrefix(got, "Essential container exited [2J ]0;owned evil FAKE: deploy succeeded é") {
		t.Errorf("stop reason %.80q…", got)
	}
	if kept := str(t, e.rawItem(runID), ledger.AttrStopReason); kept != got {
		t.Errorf("ledger keeps %.60q…, the record %.60q…", kept, got)
	}
}
