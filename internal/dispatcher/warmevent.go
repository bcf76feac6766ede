package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// minSlotLife is how long a warm runner must have been RUNNING for its
// idle death to be replaced at once (else the sweep replaces it).
const minSlotLife = time.Minute

// handleSlotEvent follows a warm slot's task through ECS's events: RUNNING
// makes a starting slot idle (only then may a run be given to it); a task
// that stops while it holds no run frees its slot and a replacement is
// started; a task that stops after its assignment ends that run as a cold
// task's stop does (the event is the run's, found through the slot), and
// the spent slot is replaced.
func (d *Dispatcher) handleSlotEvent(ctx context.Context, t taskDetail) error {
	job := d.jobOfTaskDef(t.TaskDefArn)
	if job == "" {
		d.log.Warn("ignoring ECS event of a warm runner of no job in the catalogue", "slot", t.StartedBy, "task_arn", t.TaskArn, "task_definition", t.TaskDefArn)
		return nil
	}
	for attempt := 0; attempt < 5; attempt++ {
		pool, err := d.ledger.GetWarm(ctx, job)
		if err != nil {
			return err
		}
		s, ok := pool.Slots[t.StartedBy]
		switch {
		case !ok:
			d.log.Debug("ignoring ECS event of a warm runner the ledger does not hold", "job", job, "slot", t.StartedBy, "status", t.LastStatus)
			return nil
		case s.TaskARN != "" && s.TaskARN != t.TaskArn, s.TaskARN == "" && !d.pinnedTaskDef(job, t.TaskDefArn):
			// startedBy is a string anyone who may run a task in the
			// cluster can set (as for runs, issue 24).
			d.log.Warn("ignoring ECS event of a task that is not the warm runner's", "job", job, "slot", t.StartedBy, "task_arn", t.TaskArn, "recorded", s.TaskARN)
			return nil
		}
		stopped := t.LastStatus == "STOPPED"
		var next *ledger.WarmSlot
		switch {
		case s.State == ledger.SlotAssigned:
			if !stopped && t.DesiredStatus != "STOPPED" {
				return nil // its RUNNING came long before its run
			}
			run := t
			run.StartedBy = s.Run
			if err := d.runTaskEvent(ctx, run); err != nil {
				return err
			}
			if !stopped {
				return nil
			}
		case stopped:
			d.log.Info("warm runner stopped while it held no run; replacing it", "job", job, "slot", t.StartedBy,
				"stop_code", t.StopCode, "reason", t.StoppedReason)
		case t.LastStatus == "RUNNING" && s.State == ledger.SlotStarting:
			n := s
			n.State, n.TaskARN, n.Since, n.Running = ledger.SlotIdle, t.TaskArn, d.now(), d.now()
			if ts := t.taskStart(); !ts.Started.IsZero() {
				n.Running = ts.Started // ECS's time (show's start breakdown)
			}
			next = &n
		case s.TaskARN == "":
			n := s
			n.TaskARN = t.TaskArn
			next = &n
		default:
			return nil
		}
		if next != nil {
			err = d.ledger.SetWarmSlot(ctx, job, t.StartedBy, pool, *next)
		} else {
			err = d.ledger.RemoveWarmSlot(ctx, job, t.StartedBy, pool)
		}
		if errors.Is(err, ledger.ErrConditionFailed) {
			continue // a run took it meanwhile, or another event moved it: look again
		}
		if err != nil {
			return err
		}
		if next == nil {
			if err := d.deleteQueue(ctx, s.Inbox); err != nil {
				d.log.Warn("could not delete a spent warm runner's inbox; the sweep does", "slot", t.StartedBy, "error", oneLine(err.Error()))
			}
			if s.State == ledger.SlotAssigned || (!s.Running.IsZero() && d.now().Sub(s.Running) >= minSlotLife) {
				d.fillWarm(ctx, job)
			} else {
				// A task that never ran (an image that cannot be pulled…)
				// or stopped at once (a runner that cannot wait: an older
				// image) is not replaced at once, which would start tasks
				// in a loop: the sweep starts the next one.
				d.log.Warn("warm runner stopped before it ran or right after; the sweep starts another", "job", job, "slot", t.StartedBy, "stop_code", t.StopCode, "reason", t.StoppedReason)
			}
		}
		return nil
	}
	return fmt.Errorf("warm runner %s of %s kept changing while its ECS event was handled; will look again", t.StartedBy, job)
}

// jobOfTaskDef is the catalogue job whose task definition family the ARN
// names ("" when none).
func (d *Dispatcher) jobOfTaskDef(arn string) string {
	name := arn[strings.LastIndex(arn, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		name = name[:i]
	}
	for job := range d.cfg.Jobs {
		if d.cfg.TaskFamily(job) == name {
			return job
		}
	}
	return ""
}

// taskStarter is the startedBy of a run's task: the run id, or the slot id
// of the warm runner the run was given to (a single-use runner: its task
// is the run's alone).
func (d *Dispatcher) taskStarter(ctx context.Context, runID string) (string, error) {
	warm := false
	for _, j := range d.cfg.Jobs {
		warm = warm || j.Warm > 0
	}
	if !warm {
		return runID, nil
	}
	it, ok, err := d.ledger.Get(ctx, runID)
	if err != nil {
		return "", err
	}
	if ok && it.WarmSlot != "" {
		return it.WarmSlot, nil
	}
	return runID, nil
}
