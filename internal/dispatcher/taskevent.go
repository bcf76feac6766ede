package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// taskDetail is the part of an "ECS Task State Change" event's detail the
// dispatcher reads. AWS adds fields over time, so this decoder, unlike the
// protocol's, ignores unknown ones.
type taskDetail struct {
	ClusterArn    string `json:"clusterArn"`
	TaskArn       string `json:"taskArn"`
	TaskDefArn    string `json:"taskDefinitionArn"`
	StartedBy     string `json:"startedBy"`
	LastStatus    string `json:"lastStatus"`
	DesiredStatus string `json:"desiredStatus"`
	StopCode      string `json:"stopCode"`
	StoppedReason string `json:"stoppedReason"`
	Version       uint64 `json:"version"`
	// The task's start, ISO 8601 times (taskStart reads them).
	CreatedAt     string `json:"createdAt"`
	PullStartedAt string `json:"pullStartedAt"`
	PullStoppedAt string `json:"pullStoppedAt"`
	StartedAt     string `json:"startedAt"`
	Containers    []struct {
		Name     string `json:"name"`
		ExitCode *int   `json:"exitCode"`
		Reason   string `json:"reason"`
	} `json:"containers"`
}

// handleTaskEvent forwards a lifecycle change of one of this cluster's run
// tasks to the run's queue, and records the end of a run in the ledger.
func (d *Dispatcher) handleTaskEvent(ctx context.Context, ev events.CloudWatchEvent) error {
	var t taskDetail
	if err := json.Unmarshal(ev.Detail, &t); err != nil {
		d.log.Warn("ignoring ECS event with malformed detail", "error", err.Error())
		return nil
	}
	if sameCluster(t.ClusterArn, d.set.Cluster) && protocol.ValidWarmSlotID(t.StartedBy) {
		return d.handleSlotEvent(ctx, t) // warmevent.go
	}
	return d.runTaskEvent(ctx, t)
}

// runTaskEvent handles an event of a run's task (t.StartedBy the run id).
func (d *Dispatcher) runTaskEvent(ctx context.Context, t taskDetail) error {
	if !sameCluster(t.ClusterArn, d.set.Cluster) || protocol.ValidateRunID(t.StartedBy) != nil {
		d.log.Debug("ignoring ECS event of another cluster or not started by the broker", "cluster", t.ClusterArn, "started_by", t.StartedBy)
		return nil
	}
	item, ok, err := d.ledger.Get(ctx, t.StartedBy)
	if err != nil {
		return err
	}
	if ok && item.TaskARN == "" && !d.pinnedTaskDef(item.Job, t.TaskDefArn) {
		// startedBy is only a string anyone who may run a task in the
		// cluster can set: a task the ledger does not know yet counts as
		// the run's only if it runs the job's pinned revision (issue 24).
		d.log.Warn("ignoring ECS event of a task that does not run the job's pinned task definition", "run_id", t.StartedBy,
			"task_arn", t.TaskArn, "task_definition", t.TaskDefArn, "pinned", d.taskDefs[item.Job])
		return nil
	}
	if ok && item.TaskARN == "" && t.TaskArn != "" {
		// The first word of the run's task may come before RunTask's answer,
		// or instead of it (an answer lost, ListTasks not showing the task
		// yet). Record it at once: from now on no rejection can be written
		// for the run (rejectLaunch requires a ledger without a task), and a
		// retry accepts the run with this task.
		it, err := d.ledger.RecordTask(ctx, t.StartedBy, t.TaskArn)
		switch {
		case err == nil:
			item = it
		case errors.Is(err, ledger.ErrConditionFailed):
			if item, ok, err = d.ledger.Get(ctx, t.StartedBy); err != nil {
				return err
			}
		default:
			return err
		}
	}
	if !ok || (item.TaskARN != "" && item.TaskARN != t.TaskArn) {
		d.log.Warn("ignoring ECS event for a task the ledger does not know", "run_id", t.StartedBy, "task_arn", t.TaskArn)
		return nil
	}
	if item.Status == ledger.Rejected && t.LastStatus != "STOPPED" && t.DesiredStatus != "STOPPED" {
		// The trigger was told the run was refused, yet a task runs for it.
		// The dispatcher writes a rejection only when it knows of no task,
		// so this can only be a task whose start neither RunTask's answer
		// nor ListTasks showed in time: stop it, so that what happens is
		// what the trigger reported.
		reason := truncateRunes(oneLine("deploy-broker run "+item.RunID+" was rejected ("+item.RejectCode+"); stopping a task that started anyway"), 250)
		if err := d.stopTask(ctx, item.RunID, t.TaskArn, reason, ""); err != nil {
			return err
		}
		d.write(ctx, audit{RunID: item.RunID, Job: item.Job, Decision: DecisionCancelled, Reason: reason, TaskARN: t.TaskArn})
	}
	d.recordTaskStart(ctx, item, t)
	rec := d.record(protocol.TypeTask, protocol.SourceECS, max(t.Version, 1))
	rec.Task = &protocol.Task{TaskARN: t.TaskArn, Status: t.LastStatus, DesiredStatus: t.DesiredStatus,
		StopCode: t.StopCode, StoppedReason: protocol.StopReason(t.StoppedReason)}
	for _, c := range t.Containers {
		if c.Name == config.ContainerName {
			rec.Task.ExitCode = c.ExitCode
			if rec.Task.StoppedReason == "" && c.Reason != "" {
				rec.Task.StoppedReason = protocol.StopReason(c.Reason)
			}
		}
	}
	url := item.QueueURL
	if url == "" {
		var found bool
		if url, found, err = d.queueURL(ctx, t.StartedBy); err != nil {
			return err
		} else if !found {
			return nil // released or swept: nobody is listening
		}
	}
	if t.LastStatus == "STOPPED" {
		x := d.runExit(ctx, item.RunID, item.Job, t.TaskArn) // outputs.go
		end := ledger.End{At: d.now(), StopCode: t.StopCode, StopReason: rec.Task.StoppedReason, ExitCode: rec.Task.ExitCode,
			Outputs: outputsJSON(x), LogExitCode: logExitDisagrees(x, rec.Task.ExitCode)}
		if item.TaskARN == "" {
			end.TaskARN = t.TaskArn
		}
		it, err := d.ledger.Finish(ctx, t.StartedBy, end)
		if err != nil {
			return err
		}
		if end.LogExitCode != nil {
			d.write(ctx, audit{RunID: it.RunID, Job: it.Job, Principal: it.RequestedBy, TaskARN: t.TaskArn, Decision: DecisionExitDisagrees,
				Reason: fmt.Sprintf("the run log's exit record gives exit code %d, but ECS reports the runner container exited %d: the ledger, show and attach report ECS's", *end.LogExitCode, *rec.Task.ExitCode)})
		}
		if item.Status != ledger.Stopped {
			d.emit(ctx, d.endedEvent(it, rec.Task.ExitCode, t.StopCode, it.EndedAt))
		}
		if err := d.releaseSlot(ctx, item.Job, t.StartedBy); err != nil {
			return err
		}
		d.freeRunSlot(ctx, it)
	}
	if err := d.send(ctx, url, t.StartedBy, rec); err != nil {
		if isCode(err, "AWS.SimpleQueueService.NonExistentQueue") || strings.Contains(err.Error(), "QueueDoesNotExist") {
			return nil
		}
		return err
	}
	return nil
}

// recordTaskStart writes the task's start times the event gives and the
// run's item lacks (the breakdown `deploy-trigger show` prints). It is
// informational: a failed write is logged and the event handled on.
func (d *Dispatcher) recordTaskStart(ctx context.Context, item ledger.Item, t taskDetail) {
	ts := t.taskStart()
	if !ts.Adds(item.TaskStart) {
		return
	}
	if _, err := d.ledger.RecordTaskStart(ctx, item.RunID, ts); err != nil {
		d.log.Warn("could not record the task's start times in the ledger", "run_id", item.RunID, "task_arn", t.TaskArn, "error", err.Error())
	}
}

// taskStart reads the event's start times; one that does not parse reads
// as absent.
func (t taskDetail) taskStart() ledger.TaskStart {
	tm := func(s string) time.Time {
		at, _ := time.Parse(time.RFC3339Nano, s)
		return at
	}
	return ledger.TaskStart{Created: tm(t.CreatedAt), PullStarted: tm(t.PullStartedAt), PullStopped: tm(t.PullStoppedAt), Started: tm(t.StartedAt)}
}

// sameCluster compares a cluster ARN with the configured cluster, which may be
// an ARN or, locally, a name.
func sameCluster(arn, configured string) bool {
	if arn == configured {
		return true
	}
	return !strings.HasPrefix(configured, "arn:") && strings.HasSuffix(arn, ":cluster/"+configured)
}

// pinnedTaskDef reports whether arn (an event's taskDefinitionArn) is the
// task definition revision the dispatcher runs job with: the pinned ARN, or
// the pinned "<family>:<revision>" of this account and region.
func (d *Dispatcher) pinnedTaskDef(job, arn string) bool {
	td := d.taskDefs[job]
	switch {
	case td == "" || arn == "":
		return false
	case strings.HasPrefix(td, "arn:"):
		return arn == td
	}
	parts := strings.SplitN(arn, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && parts[2] == "ecs" && parts[5] == "task-definition/"+td &&
		(d.set.Region == "" || parts[3] == d.set.Region)
}
