package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// handleCancel stops the run's task. Unknown run ids are harmless.
func (d *Dispatcher) handleCancel(ctx context.Context, req *protocol.Request) error {
	a := audit{RunID: req.RunID, Kind: req.Kind}
	if d.now().After(req.ExpiresAt.Add(d.cfg.Broker.ClockSkew.D())) {
		a.Decision, a.Reason = DecisionIgnored, "cancel request expired"
		d.write(ctx, a)
		return nil
	}
	item, ok, err := d.ledger.get(ctx, req.RunID)
	if err != nil {
		return err
	}
	if !ok {
		a.Decision, a.Reason = DecisionIgnored, "no such run"
		d.write(ctx, a)
		return nil
	}
	a.Job = item.Job
	taskARN := item.TaskARN
	if taskARN == "" {
		out, err := d.ecs.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(d.set.Cluster), StartedBy: aws.String(req.RunID)})
		if err != nil {
			return fmt.Errorf("listing tasks of run %s: %w", req.RunID, err)
		}
		if len(out.TaskArns) == 0 {
			a.Decision, a.Reason = DecisionIgnored, "run has no task (status "+item.Status+")"
			d.write(ctx, a)
			return nil
		}
		taskARN = out.TaskArns[0]
	}
	reason := oneLine("cancelled by " + item.Requester)
	if len(reason) > 250 {
		reason = reason[:250]
	}
	if _, err := d.ecs.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(d.set.Cluster), Task: aws.String(taskARN), Reason: aws.String(reason)}); err != nil {
		return fmt.Errorf("stopping task %s of run %s: %w", taskARN, req.RunID, err)
	}
	if err := d.ledger.update(ctx, req.RunID, map[string]string{"cancelled_at": d.now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return err
	}
	a.Decision, a.Reason, a.TaskARN = DecisionCancelled, reason, taskARN
	d.write(ctx, a)
	return nil
}

// handleRelease deletes the run's queue once the trigger has read it all.
func (d *Dispatcher) handleRelease(ctx context.Context, req *protocol.Request) error {
	a := audit{RunID: req.RunID, Kind: req.Kind}
	item, ok, err := d.ledger.get(ctx, req.RunID)
	if err != nil {
		return err
	}
	if !ok {
		a.Decision, a.Reason = DecisionIgnored, "no such run"
		d.write(ctx, a)
		return nil
	}
	url := item.QueueURL
	if url == "" {
		var found bool
		if url, found, err = d.queueURL(ctx, req.RunID); err != nil {
			return err
		} else if !found {
			a.Decision, a.Reason = DecisionIgnored, "run has no queue"
			d.write(ctx, a)
			return nil
		}
	}
	if err := d.deleteQueue(ctx, url); err != nil {
		return err
	}
	if err := d.ledger.update(ctx, req.RunID, map[string]string{"released_at": d.now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return err
	}
	a.Decision, a.Job = DecisionReleased, item.Job
	d.write(ctx, a)
	return nil
}
