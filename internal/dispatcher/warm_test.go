package dispatcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// These tests drive warm runners through moto: RunTask, the ledger's
// conditional writes and the inbox queues are the emulator's; ECS's task
// events are the recorded templates, sent by the test (moto runs no task).

// withWarm gives job n warm runners in the test's catalogue.
func (e *env) withWarm(job string, n int) {
	j := e.cfg.Jobs[job]
	j.Warm = n
	e.cfg.Jobs[job] = j
}

func (e *env) pool(job string) ledger.WarmPool {
	e.t.Helper()
	p, err := ledger.New(e.db, e.res.LedgerTable, time.Hour).GetWarm(context.Background(), job)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// sweep runs the scheduled sweep.
func (e *env) sweep() {
	e.t.Helper()
	if err := e.invoke(e.event("scheduled-sweep.json", nil)); err != nil {
		e.t.Fatal(err)
	}
}

// slotEvent sends ECS's event of a slot's task (template: running or one
// of the stopped ones).
func (e *env) slotEvent(file, id string, s ledger.WarmSlot, version int) {
	e.t.Helper()
	if err := e.invoke(e.event(file, map[string]any{"TaskArn": s.TaskARN, "StartedBy": id, "Version": version})); err != nil {
		e.t.Fatal(err)
	}
}

// idleSlot starts the job's pool through the sweep and reports its one
// slot RUNNING, as ECS would.
func (e *env) idleSlot(job string) (string, ledger.WarmSlot) {
	e.t.Helper()
	e.sweep()
	p := e.pool(job)
	if len(p.Slots) != 1 {
		e.t.Fatalf("the sweep started %d warm runners, want 1: %+v", len(p.Slots), p.Slots)
	}
	for id, s := range p.Slots {
		if s.State != ledger.SlotStarting || s.TaskARN == "" || !strings.Contains(s.Inbox, protocol.InboxName(e.name, id)) {
			e.t.Fatalf("new slot %s is %+v", id, s)
		}
		e.slotEvent("ecs-task-running.json", id, s, 2)
		if got := e.pool(job).Slots[id]; got.State != ledger.SlotIdle {
			e.t.Fatalf("slot %s after RUNNING: %+v", id, got)
		}
		return id, e.pool(job).Slots[id]
	}
	panic("unreachable")
}

func (e *env) inboxMessages(url string) []string {
	e.t.Helper()
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	var bodies []string
	for _, m := range out.Messages {
		bodies = append(bodies, aws.ToString(m.Body))
	}
	return bodies
}

// A run of a job with an idle warm runner is sent to it: no task of its
// own, one assignment in the slot's inbox carrying what RunTask would have
// carried, accepted says warm, the ledger names the slot's task, and a
// replacement is started. The slot's STOPPED event ends the run and
// removes the spent slot and its inbox.
func TestWarmRunAssignedToIdleSlot(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	id, slot := e.idleSlot("website")

	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	acc := e.only(r.RunID, protocol.TypeAccepted).Accepted
	if acc.Start != protocol.StartWarm || acc.TaskARN != slot.TaskARN || acc.Warm != 1 || acc.WarmBusy != 0 {
		t.Fatalf("accepted %+v, want warm on %s", acc, slot.TaskARN)
	}
	if ts := e.tasks(r.RunID); len(ts) != 0 {
		t.Fatalf("a warm run started tasks of its own: %v", ts)
	}
	msgs := e.inboxMessages(slot.Inbox)
	if len(msgs) != 1 {
		t.Fatalf("inbox holds %d messages, want the one assignment", len(msgs))
	}
	a, err := protocol.DecodeAssignment([]byte(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	url, _ := e.queueURL(r.RunID)
	if a.RunID != r.RunID || a.Job != "website" || a.Slot != id || a.QueueURL != url || len(a.Argv) != 5 || a.Argv[3] != r.Params["version"] {
		t.Fatalf("assignment %+v", a)
	}
	if it := e.item(r.RunID); it.TaskARN != slot.TaskARN || it.WarmSlot != id || it.Status != ledger.Accepted || !it.TaskStart.Started.Equal(slot.Running) || slot.Running.IsZero() {
		t.Fatalf("ledger %+v (the slot's task started at %s)", it, slot.Running)
	}
	p := e.pool("website")
	if got := p.Slots[id]; got.State != ledger.SlotAssigned || got.Run != r.RunID {
		t.Fatalf("slot after the run: %+v", got)
	}
	if len(p.Slots) != 2 {
		t.Fatalf("no replacement started: %+v", p.Slots)
	}

	e.slotEvent("ecs-task-stopped-exited.json", id, slot, 9)
	if it := e.item(r.RunID); it.Status != ledger.Stopped || it.ExitCode == nil || *it.ExitCode != 3 {
		t.Fatalf("the slot's STOPPED did not end the run: %+v", it)
	}
	if _, ok := e.pool("website").Slots[id]; ok {
		t.Fatal("the spent slot is still in the ledger")
	}
	if _, err := e.sqs.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(protocol.InboxName(e.name, id))}); err == nil {
		t.Fatal("the spent slot's inbox still exists")
	}
	last := e.records(r.RunID)
	if rec := last[len(last)-1]; rec.Type != protocol.TypeTask || rec.Task.Status != "STOPPED" {
		t.Fatalf("the run's queue did not get the slot task's STOPPED: %+v", rec)
	}
}

// With no idle warm runner (the only one is still starting), the run
// starts a task of its own and accepted says why, for the trigger's line.
func TestWarmPoolExhaustedFallsBackToRunTask(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	e.sweep() // one slot, starting: ECS has not said RUNNING
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	acc := e.only(r.RunID, protocol.TypeAccepted).Accepted
	if acc.Start != protocol.StartCold || acc.Warm != 1 || acc.WarmBusy != 1 {
		t.Fatalf("accepted %+v, want cold with 1 of 1 busy", acc)
	}
	if ts := e.tasks(r.RunID); len(ts) != 1 {
		t.Fatalf("the run started %d tasks, want 1", len(ts))
	}
	if it := e.item(r.RunID); it.WarmSlot != "" {
		t.Fatalf("a cold run names slot %s", it.WarmSlot)
	}
}

// A job without warm runners: accepted is exactly as before, with no warm
// fields for a deploy-trigger that predates them to refuse.
func TestColdJobAcceptedHasNoWarmFields(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if acc := e.only(r.RunID, protocol.TypeAccepted).Accepted; acc.Start != "" || acc.Warm != 0 {
		t.Fatalf("accepted %+v", acc)
	}
	if p := e.pool("website"); len(p.Slots) != 0 {
		t.Fatalf("warm runners for a job without warm: %+v", p.Slots)
	}
}

// An idle warm runner whose task stops (it crashed, or exited at its idle
// limit) frees its slot and a replacement starts; one that stops within a
// minute of starting (a runner that cannot wait) is left to the sweep, so
// that a broken runner does not start tasks in a loop.
func TestIdleSlotDeathIsReplaced(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	id, slot := e.idleSlot("website")
	e.clock.Add(30 * time.Second)
	e.slotEvent("ecs-task-stopped-exited.json", id, slot, 5)
	if p := e.pool("website"); len(p.Slots) != 0 {
		t.Fatalf("a runner that stopped 30 s after it started was replaced at once: %+v", p.Slots)
	}
	id, slot = e.idleSlot("website") // the sweep's
	e.clock.Add(10 * time.Minute)
	e.slotEvent("ecs-task-stopped-exited.json", id, slot, 5)
	p := e.pool("website")
	if _, ok := p.Slots[id]; ok {
		t.Fatal("the dead slot is still in the ledger")
	}
	if len(p.Slots) != 1 {
		t.Fatalf("%d slots after the idle death, want 1 replacement", len(p.Slots))
	}
	for nid, s := range p.Slots {
		if nid == id || s.State != ledger.SlotStarting || s.TaskARN == "" || s.TaskARN == slot.TaskARN {
			t.Fatalf("replacement %s: %+v", nid, s)
		}
	}
}

// The sweep stops the idle warm runners of a job that no longer has any
// (removed from the catalogue, or warm taken away), and deletes their
// inboxes.
func TestSweepStopsSlotsOfRemovedJob(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	id, slot := e.idleSlot("website")
	delete(e.cfg.Jobs, "website")
	e.sweep()
	if p := e.pool("website"); len(p.Slots) != 0 {
		t.Fatalf("slots of a removed job after the sweep: %+v", p.Slots)
	}
	out, err := e.ecs.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: aws.String(e.res.ClusterARN), Tasks: []string{slot.TaskARN}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("describing the slot's task: %v", err)
	}
	if st := aws.ToString(out.Tasks[0].DesiredStatus); st != "STOPPED" {
		t.Fatalf("the removed job's warm runner %s is %s, not stopped", id, st)
	}
	if _, err := e.sqs.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(protocol.InboxName(e.name, id))}); err == nil {
		t.Fatal("the removed job's inbox still exists")
	}
}

// The assignment's send fails (a dropped connection): Lambda's retry finds
// the slot the run already holds and sends the assignment again; no second
// slot is taken and no task of its own is started.
func TestWarmAssignmentRetriedOnTheSameSlot(t *testing.T) {
	e := newEnv(t, withSQSFailing("SendMessage", 1))
	e.withWarm("website", 1)
	id, slot := e.idleSlot("website")
	r := e.request()
	b := e.body(r)
	if err := e.invoke(e.sns(b)); err == nil {
		t.Fatal("a failed assignment send was not retried")
	}
	if got := e.pool("website").Slots[id]; got.State != ledger.SlotAssigned || got.Run != r.RunID {
		t.Fatalf("slot after the failed send: %+v", got)
	}
	if err := e.invoke(e.sns(b)); err != nil {
		t.Fatal(err)
	}
	if acc := e.only(r.RunID, protocol.TypeAccepted).Accepted; acc.Start != protocol.StartWarm || acc.TaskARN != slot.TaskARN {
		t.Fatalf("accepted %+v", acc)
	}
	if ts := e.tasks(r.RunID); len(ts) != 0 {
		t.Fatalf("the retry started tasks of its own: %v", ts)
	}
	if msgs := e.inboxMessages(slot.Inbox); len(msgs) != 1 {
		t.Fatalf("inbox holds %d assignments, want 1", len(msgs))
	}
}

// A launch that stopped after giving the run to a warm runner, before the
// ledger recorded it, and that no retry finished: the sweep finds the slot
// that names the run and accepts the run on its task (rather than refusing
// a run a runner may be running).
func TestSweepFinishesAnInterruptedWarmLaunch(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	id, slot := e.idleSlot("website")
	r := e.request()
	e.claim(r, e.clock.Now().Add(-time.Second))
	l := ledger.New(e.db, e.res.LedgerTable, time.Hour)
	p := e.pool("website")
	next := slot
	next.State, next.Run = ledger.SlotAssigned, r.RunID
	if err := l.SetWarmSlot(context.Background(), "website", id, p, next); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName(e.name, r.RunID)),
		Attributes: map[string]string{"FifoQueue": "true"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(e.cfg.Broker.MaxRequestAge.D() + e.cfg.Broker.ClockSkew.D() + time.Minute)
	e.sweep()
	if acc := e.only(r.RunID, protocol.TypeAccepted).Accepted; acc.Start != protocol.StartWarm || acc.TaskARN != slot.TaskARN {
		t.Fatalf("accepted %+v", acc)
	}
	if it := e.item(r.RunID); it.Status != ledger.Accepted || it.WarmSlot != id {
		t.Fatalf("ledger %+v", it)
	}
}
