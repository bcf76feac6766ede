package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The sweep's part in warm runners: it starts what is missing (a pool after
// a deploy, a replacement whose start failed) and ends what must go.
const (
	// slotStartLimit is how long a slot may stay starting (ECS has not said
	// RUNNING) before the sweep ends it: Fargate starts a task in minutes.
	slotStartLimit = 15 * time.Minute
	// SlotRecycleAge is the age at which the sweep replaces an idle slot,
	// before its runner's own idle limit (the runner's default 12 h) makes
	// it exit, so that a run is rarely given to a runner that is leaving.
	SlotRecycleAge = 11 * time.Hour
	// spentSlotLimit is how long after its run ended a slot that was
	// assigned is kept when no STOPPED event removed it (a lost event).
	spentSlotLimit = 15 * time.Minute
	// orphanInboxAge is the age of an inbox no slot names (an invocation
	// that created it and stopped before recording the slot) at which the
	// sweep deletes it.
	orphanInboxAge = time.Hour
)

// ReconcileWarm starts the warm runners the catalogue asks for and stops
// the idle ones it no longer wants: of jobs removed from it or whose warm
// is lowered, started with another task definition revision, stuck
// starting, or old. It returns every slot id the ledger holds, for the
// sweep's look at inboxes.
func (d *Dispatcher) ReconcileWarm(ctx context.Context) (map[string]bool, error) {
	jobs, err := d.ledger.WarmJobs(ctx)
	if err != nil {
		return nil, err
	}
	for job, j := range d.cfg.Jobs {
		if j.Warm > 0 && !slices.Contains(jobs, job) {
			jobs = append(jobs, job)
		}
	}
	slices.Sort(jobs)
	held := map[string]bool{}
	var errs []error
	for _, job := range jobs {
		if err := d.reconcileJob(ctx, job, held); err != nil {
			errs = append(errs, fmt.Errorf("warm runners of %s: %w", job, err))
		}
	}
	return held, errors.Join(errs...)
}

func (d *Dispatcher) reconcileJob(ctx context.Context, job string, held map[string]bool) error {
	pool, err := d.ledger.GetWarm(ctx, job)
	if err != nil {
		return err
	}
	now := d.now()
	want := d.warmSize(job)
	var keep []string
	for _, id := range sortedSlots(pool) {
		s := pool.Slots[id]
		held[id] = true
		why := ""
		switch {
		case s.State == ledger.SlotAssigned:
			if it, ok, err := d.ledger.Get(ctx, s.Run); err == nil && (!ok || (!it.EndedAt.IsZero() && now.Sub(it.EndedAt) > spentSlotLimit)) {
				why = "its run has ended"
			}
		case want == 0:
			why = "the catalogue has no warm runners for the job"
		case s.TaskDef != d.taskDefs[job]:
			why = "it runs task definition " + s.TaskDef + ", not the job's " + d.taskDefs[job]
		case s.State == ledger.SlotStarting && now.Sub(s.Created) > slotStartLimit:
			why = fmt.Sprintf("it did not start within %s", slotStartLimit)
		case s.State == ledger.SlotIdle && now.Sub(s.Created) > SlotRecycleAge:
			why = fmt.Sprintf("it is older than %s", SlotRecycleAge)
		default:
			keep = append(keep, id)
		}
		if why != "" {
			if err := d.endSlot(ctx, job, id, pool, why); err != nil {
				return err
			}
		}
	}
	for len(keep) > want {
		// Beyond warm: the newest go (they are sorted oldest first).
		id := keep[len(keep)-1]
		keep = keep[:len(keep)-1]
		if err := d.endSlot(ctx, job, id, pool, fmt.Sprintf("the job has %d warm runners, more than its warm: %d", len(keep)+1, want)); err != nil {
			return err
		}
	}
	return d.topUp(ctx, job)
}

// endSlot removes a slot from the ledger (only as read: a slot a run took
// meanwhile stays), stops its task and deletes its inbox.
func (d *Dispatcher) endSlot(ctx context.Context, job, id string, pool ledger.WarmPool, why string) error {
	s := pool.Slots[id]
	if err := d.ledger.RemoveWarmSlot(ctx, job, id, pool); err != nil {
		if errors.Is(err, ledger.ErrConditionFailed) {
			return nil // it changed: the next sweep looks again
		}
		return err
	}
	d.log.Info("ending a warm runner", "job", job, "slot", id, "state", s.State, "reason", why)
	if s.State != ledger.SlotAssigned {
		// Only what ListTasks finds started by the slot (issue 24).
		arns, err := d.listTasks(ctx, id, ecstypes.DesiredStatusRunning)
		if err != nil {
			return err
		}
		for _, arn := range arns {
			reason := truncateRunes(oneLine("deploy-broker warm runner "+id+" ended: "+why), 250)
			if _, err := d.ecs.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(d.set.Cluster), Task: aws.String(arn), Reason: aws.String(reason)}); err != nil {
				return fmt.Errorf("stopping warm runner %s: %w", id, err)
			}
		}
	}
	return d.deleteQueue(ctx, s.Inbox)
}

// sweepInbox deletes an inbox that no slot names once it is old enough.
func (d *Dispatcher) sweepInbox(ctx context.Context, url, slot string, held map[string]bool, now time.Time) (bool, error) {
	born, err := protocol.WarmSlotTime(slot)
	if err != nil || held == nil || held[slot] || now.Sub(born) < orphanInboxAge {
		return false, nil
	}
	return true, d.deleteQueue(ctx, url)
}

func sortedSlots(p ledger.WarmPool) []string {
	ids := make([]string, 0, len(p.Slots))
	for id := range p.Slots {
		ids = append(ids, id)
	}
	slices.Sort(ids) // slot ids are ULIDs: oldest first
	return ids
}
