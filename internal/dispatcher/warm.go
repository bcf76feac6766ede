package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Warm single-use runners (issue 26; docs/DISPATCHER.md, "Warm runners").
// A job with `warm: N` has N slots: tasks of its pinned task definition
// started ahead of time, each waiting on an inbox of its own for one
// assignment. After admission, launch gives the run to an idle slot
// (launchWarm) instead of calling RunTask: a conditional write in the
// ledger makes the slot the run's, then the assignment goes to the slot's
// inbox, the run is recorded started on the slot's task, accepted is
// written, and only then is a replacement slot started (off the critical
// path). With no idle slot, the run starts a task of its own as without
// warm runners, and accepted says so.

// warmStart is how a run's task started, for accepted and the ledger.
type warmStart struct {
	start      string // protocol.StartWarm, protocol.StartCold, "" for a job without warm runners
	size, busy int
	slot       string    // the slot the run was assigned to
	running    time.Time // since when the slot's task was RUNNING
}

func (d *Dispatcher) warmSize(job string) int {
	if j, ok := d.cfg.Jobs[job]; ok {
		return j.Warm
	}
	return 0
}

// launchWarm gives the run to an idle warm slot of its job. done is false
// when the run must start a task of its own; cold then says why, for
// accepted. A retried launch finds the slot it assigned before.
func (d *Dispatcher) launchWarm(ctx context.Context, req *protocol.Request, p identity.Principal, cj checkedJob, queueURL string, a audit) (done bool, cold warmStart, err error) {
	n := d.warmSize(req.Job)
	if n == 0 {
		return false, warmStart{}, nil
	}
	// What a cold start would send, rendered first: a slot is taken only
	// for a run that can be assigned.
	asg, err := assignmentOf(d.taskInput(req, p, cj, queueURL, req.RequestedAt))
	if err == nil {
		asg.Slot = protocol.NewWarmSlotID(d.now()) // a slot id's length, for the check
		_, err = protocol.EncodeAssignment(asg)
	}
	if err != nil {
		// Never for a run the catalogue admits (RunTask's overrides are
		// smaller still); such a run starts cold and RunTask judges it.
		d.log.Warn("the run cannot be given to a warm runner", "run_id", req.RunID, "error", oneLine(err.Error()))
		return false, warmStart{start: protocol.StartCold, size: n}, nil
	}
	pool, err := d.ledger.GetWarm(ctx, req.Job)
	if err != nil {
		return false, warmStart{}, err
	}
	id, slot, busy, err := d.claimSlot(ctx, req, pool)
	if err != nil || id == "" {
		return false, warmStart{start: protocol.StartCold, size: n, busy: busy}, err
	}
	// The slot goes on the run's item before the assignment is sent, on
	// condition that the run has no slot or this one: a retry whose first
	// slot is gone from the pool (its task stopped, its event handled
	// after the retry read the run) never gives the run to a second slot.
	had, err := d.ledger.AssignWarm(ctx, req.RunID, id)
	if err != nil {
		return false, warmStart{}, err // the slot stays the run's: a retry finds it
	}
	if had != id {
		d.unassign(ctx, req.Job, id, req.RunID)
		return true, warmStart{}, d.slotGone(ctx, req, had, queueURL, a)
	}
	asg.Slot = id
	body, err := protocol.EncodeAssignment(asg)
	if err != nil {
		return false, warmStart{}, err
	}
	if _, err := d.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(slot.Inbox), MessageBody: aws.String(string(body))}); err != nil {
		// The slot stays the run's: a retry sends the assignment again.
		return false, warmStart{}, fmt.Errorf("sending run %s to warm runner %s: %w", req.RunID, id, err)
	}
	a.Reason = "assigned to warm runner " + id
	if err := d.acceptWith(ctx, req.RunID, req.Job, slot.TaskARN, queueURL, a, warmStart{start: protocol.StartWarm, size: n, busy: busy, slot: id, running: slot.Running}); err != nil {
		return true, warmStart{}, err
	}
	d.fillWarm(ctx, req.Job)
	return true, warmStart{}, nil
}

// claimSlot makes an idle slot the run's (one conditional write per slot
// tried, in random order, so that concurrent runs rarely contend), or
// returns the slot the run already holds. id is "" when no slot was free;
// busy counts the slots that were not free.
func (d *Dispatcher) claimSlot(ctx context.Context, req *protocol.Request, pool ledger.WarmPool) (id string, slot ledger.WarmSlot, busy int, err error) {
	var idle []string
	for sid, s := range pool.Slots {
		switch {
		case s.State == ledger.SlotAssigned && s.Run == req.RunID:
			return sid, s, 0, nil // a retried launch
		case s.State == ledger.SlotIdle && s.TaskARN != "" && s.TaskDef == d.taskDefs[req.Job]:
			idle = append(idle, sid)
		default:
			busy++
		}
	}
	now := d.now()
	for _, i := range rand.Perm(len(idle)) {
		sid := idle[i]
		next := pool.Slots[sid]
		next.State, next.Run, next.Since = ledger.SlotAssigned, req.RunID, now
		err := d.ledger.SetWarmSlot(ctx, req.Job, sid, pool, next)
		if errors.Is(err, ledger.ErrConditionFailed) {
			busy++ // another run took it, or it stopped
			continue
		}
		if err != nil {
			return "", ledger.WarmSlot{}, busy, err
		}
		return sid, next, busy, nil
	}
	return "", ledger.WarmSlot{}, busy, nil
}

// unassign makes slot id, which this invocation made runID's but sent
// nothing, idle again. Best effort: a slot left assigned is a spent slot.
func (d *Dispatcher) unassign(ctx context.Context, job, id, runID string) {
	pool, err := d.ledger.GetWarm(ctx, job)
	if s, ok := pool.Slots[id]; err == nil && ok && s.State == ledger.SlotAssigned && s.Run == runID {
		next := s
		next.State, next.Run, next.Since = ledger.SlotIdle, "", d.now()
		err = d.ledger.SetWarmSlot(ctx, job, id, pool, next)
	}
	if err != nil {
		d.log.Warn("could not free a warm runner given to a run that had one", "job", job, "slot", id, "run_id", runID, "error", oneLine(err.Error()))
	}
}

// slotGone finishes a retried launch whose run was given to warm runner
// slot before, and that slot is no longer in the pool: its task stopped,
// and the stop's event ends the run as a cold task's stop does (it records
// the task on the run first). The run is accepted on that task; until the
// event has recorded it, the launch is retried.
func (d *Dispatcher) slotGone(ctx context.Context, req *protocol.Request, slot, queueURL string, a audit) error {
	it, ok, err := d.ledger.Get(ctx, req.RunID)
	if err != nil {
		return err
	}
	if !ok || it.TaskARN == "" {
		return fmt.Errorf("run %s was given to warm runner %s, which is gone, and its stop is not recorded yet; will look again (the run is never given to another runner)", req.RunID, slot)
	}
	a.Reason = "the warm runner the run was given to (" + slot + ") has stopped"
	return d.acceptWith(ctx, req.RunID, req.Job, it.TaskARN, queueURL, a, warmStart{start: protocol.StartWarm, size: d.warmSize(req.Job), slot: slot})
}

// assignmentOf is the assignment carrying what in, the RunTask input a cold
// start of the run would send, gives the runner: one rendering of a run for
// both kinds of start.
func assignmentOf(in *ecs.RunTaskInput) (protocol.Assignment, error) {
	var a protocol.Assignment
	if in.Overrides == nil || len(in.Overrides.ContainerOverrides) != 1 {
		return a, errors.New("the run's task input has no container override")
	}
	co := in.Overrides.ContainerOverrides[0]
	a.Argv = co.Command
	for _, kv := range co.Environment {
		v := aws.ToString(kv.Value)
		switch name := aws.ToString(kv.Name); {
		case name == protocol.EnvRunID:
			a.RunID = v
		case name == protocol.EnvQueueURL:
			a.QueueURL = v
		case name == protocol.EnvJob:
			a.Job = v
		case name == protocol.EnvHeartbeat:
			a.Heartbeat = v
		case name == protocol.EnvGrace:
			a.Grace = v
		case name == protocol.EnvRequester:
			a.Requester = v
		case name == protocol.EnvRedact:
			a.Redact = strings.Split(v, ",")
		case name == protocol.EnvDeadline:
			if err := a.Deadline.UnmarshalText([]byte(v)); err != nil {
				return a, fmt.Errorf("the run's deadline %q: %w", v, err)
			}
		case strings.HasPrefix(name, protocol.EnvParamPrefix):
			if a.Secrets == nil {
				a.Secrets = map[string]string{}
			}
			a.Secrets[strings.ToLower(strings.TrimPrefix(name, protocol.EnvParamPrefix))] = v
		default:
			return a, fmt.Errorf("the run's task input sets %s, which an assignment cannot carry", name)
		}
	}
	return a, nil
}

// fillWarm starts slots until the job has as many as its catalogue entry
// asks for. Failures are logged: the sweep tries again.
func (d *Dispatcher) fillWarm(ctx context.Context, job string) {
	if err := d.topUp(ctx, job); err != nil {
		d.log.Warn("could not start a warm runner; the sweep tries again", "job", job, "error", oneLine(err.Error()))
	}
}

func (d *Dispatcher) topUp(ctx context.Context, job string) error {
	n := d.warmSize(job)
	if n == 0 || d.taskDefs[job] == "" {
		return nil
	}
	pool, err := d.ledger.GetWarm(ctx, job)
	if err != nil {
		return err
	}
	live := 0
	for _, s := range pool.Slots {
		if s.State != ledger.SlotAssigned {
			live++
		}
	}
	for ; live < n; live++ {
		if err := d.startSlot(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// startSlot creates a slot's inbox, records the slot, and starts its task.
func (d *Dispatcher) startSlot(ctx context.Context, job string) error {
	now := d.now()
	id := protocol.NewWarmSlotID(now)
	inbox, err := d.createInbox(ctx, job, id)
	if err != nil {
		return err
	}
	slot := ledger.WarmSlot{State: ledger.SlotStarting, Inbox: inbox, TaskDef: d.taskDefs[job], Created: now, Since: now}
	if err := d.ledger.AddWarmSlot(ctx, job, id, slot); err != nil {
		return err
	}
	arn, err := d.runTask(ctx, d.slotInput(job, id, inbox))
	var lf *launchError
	if errors.As(err, &lf) {
		d.dropSlot(ctx, job, id)
		return fmt.Errorf("ECS did not start warm runner %s of %s: %s", id, job, lf.reason)
	}
	if err != nil {
		return err // the sweep ends a slot that never started
	}
	d.log.Info("warm runner started", "job", job, "slot", id, "task_arn", arn)
	// Record the task unless its RUNNING event did first.
	pool, err := d.ledger.GetWarm(ctx, job)
	if err != nil {
		return err
	}
	if s, ok := pool.Slots[id]; ok && s.TaskARN == "" {
		s.TaskARN = arn
		if err := d.ledger.SetWarmSlot(ctx, job, id, pool, s); err != nil && !errors.Is(err, ledger.ErrConditionFailed) {
			return err
		}
	}
	return nil
}

// slotInput is the RunTask call of a slot: the job's pinned task definition,
// in the broker's network, with the job's name and the slot's inbox and no
// run: the runner waits for its assignment.
func (d *Dispatcher) slotInput(job, id, inbox string) *ecs.RunTaskInput {
	return &ecs.RunTaskInput{
		Cluster:              aws.String(d.set.Cluster),
		TaskDefinition:       aws.String(d.taskDefs[job]),
		LaunchType:           ecstypes.LaunchTypeFargate,
		Count:                aws.Int32(1),
		StartedBy:            aws.String(id),
		ClientToken:          aws.String(id),
		NetworkConfiguration: d.network(),
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: aws.String(config.ContainerName), Command: []string{protocol.WarmCommand},
			Environment: []ecstypes.KeyValuePair{
				{Name: aws.String(protocol.EnvJob), Value: aws.String(job)},
				{Name: aws.String(protocol.EnvWarmInbox), Value: aws.String(inbox)},
			},
		}}},
		Tags: []ecstypes.Tag{
			{Key: aws.String(protocol.TagJob), Value: aws.String(job)},
			{Key: aws.String(protocol.TagWarmSlot), Value: aws.String(id)},
		},
	}
}

// dropSlot removes a slot that holds no run and deletes its inbox.
func (d *Dispatcher) dropSlot(ctx context.Context, job, id string) {
	pool, err := d.ledger.GetWarm(ctx, job)
	if err == nil {
		s, ok := pool.Slots[id]
		if !ok {
			return
		}
		if err = d.ledger.RemoveWarmSlot(ctx, job, id, pool); err == nil {
			err = d.deleteQueue(ctx, s.Inbox)
		}
	}
	if err != nil {
		d.log.Warn("could not remove a warm runner; the sweep tries again", "job", job, "slot", id, "error", oneLine(err.Error()))
	}
}

// assigned is a slot a run was given to.
type assigned struct {
	warmStart
	task string
}

// assignedSlot is the warm slot the run was given to, if any (slot "").
func (d *Dispatcher) assignedSlot(ctx context.Context, job, runID string) (assigned, error) {
	if d.warmSize(job) == 0 {
		return assigned{}, nil
	}
	pool, err := d.ledger.GetWarm(ctx, job)
	if err != nil {
		return assigned{}, err
	}
	for id, s := range pool.Slots {
		if s.State == ledger.SlotAssigned && s.Run == runID && s.TaskARN != "" {
			return assigned{warmStart{start: protocol.StartWarm, size: d.warmSize(job), slot: id, running: s.Running}, s.TaskARN}, nil
		}
	}
	return assigned{}, nil
}
