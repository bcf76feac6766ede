package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// taskInput renders the RunTask call for a checked request. The command is
// the catalogue's argv with parameters substituted inside its elements: no
// shell ever sees request data.
func (d *Dispatcher) taskInput(req *protocol.Request, p identity.Principal, cj checkedJob, queueURL string, from time.Time) *ecs.RunTaskInput {
	job := cj.job
	env := []ecstypes.KeyValuePair{
		{Name: aws.String(protocol.EnvRunID), Value: aws.String(req.RunID)},
		{Name: aws.String(protocol.EnvQueueURL), Value: aws.String(queueURL)},
		{Name: aws.String(protocol.EnvJob), Value: aws.String(req.Job)},
		{Name: aws.String(protocol.EnvDeadline), Value: aws.String(from.Add(job.Timeout.D()).UTC().Format(time.RFC3339))},
		{Name: aws.String(protocol.EnvHeartbeat), Value: aws.String(d.cfg.Runner.Heartbeat.D().String())},
		{Name: aws.String(protocol.EnvGrace), Value: aws.String(d.cfg.Runner.Grace.D().String())},
		// The verified requester, for the deployment session's
		// deploy-broker:requester tag (CloudTrail names who asked).
		{Name: aws.String(protocol.EnvRequester), Value: aws.String(principalTag(p))},
	}
	names := job.RedactNames()
	for _, p := range secretParamEnv(cj) {
		env = append(env, p)
		names = append(names, aws.ToString(p.Name))
	}
	if len(names) > 0 {
		env = append(env, ecstypes.KeyValuePair{Name: aws.String(protocol.EnvRedact), Value: aws.String(strings.Join(names, ","))})
	}
	return &ecs.RunTaskInput{
		Cluster:              aws.String(d.set.Cluster),
		TaskDefinition:       aws.String(d.taskDefs[req.Job]),
		LaunchType:           ecstypes.LaunchTypeFargate,
		Count:                aws.Int32(1),
		StartedBy:            aws.String(req.RunID),
		ClientToken:          aws.String(req.RunID),
		NetworkConfiguration: d.network(),
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: aws.String(config.ContainerName), Command: cj.argv, Environment: env,
		}}},
		Tags: []ecstypes.Tag{
			{Key: aws.String(protocol.TagRunID), Value: aws.String(req.RunID)},
			{Key: aws.String(protocol.TagJob), Value: aws.String(req.Job)},
			{Key: aws.String(protocol.TagRequester), Value: aws.String(principalTag(p))},
		},
	}
}

// network is the tasks' network configuration.
func (d *Dispatcher) network() *ecstypes.NetworkConfiguration {
	assign := ecstypes.AssignPublicIpDisabled
	if d.set.AssignPublicIP {
		assign = ecstypes.AssignPublicIpEnabled
	}
	return &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
		Subnets: d.set.Subnets, SecurityGroups: d.set.SecurityGroups, AssignPublicIp: assign,
	}}
}

// secretParamEnv gives every non-empty parameter declared secret to the
// runner as DEPLOY_BROKER_PARAM_<NAME>, so that the name can go into
// DEPLOY_BROKER_REDACT: the runner knows only variables, and without this a
// job that echoes its arguments would send the secret back to the CI log.
// Parameter names are lower-case letters, digits and '_', so the variable
// name is always valid. The values are the ones check resolved.
func secretParamEnv(cj checkedJob) []ecstypes.KeyValuePair {
	secret := cj.job.SecretParams()
	if len(secret) == 0 {
		return nil
	}
	vals := cj.params
	names := make([]string, 0, len(secret))
	for name := range secret {
		names = append(names, name)
	}
	sort.Strings(names)
	var env []ecstypes.KeyValuePair
	for _, name := range names {
		if v := vals[name]; v != "" {
			env = append(env, ecstypes.KeyValuePair{Name: aws.String(SecretParamEnvName(name)), Value: aws.String(v)})
		}
	}
	return env
}

// SecretParamEnvName is the runner variable that carries a secret
// parameter's value: DEPLOY_BROKER_PARAM_ + the name in upper case.
func SecretParamEnvName(param string) string { return protocol.EnvParamPrefix + strings.ToUpper(param) }

// rejectLaunch ends a launch claim with a rejection, and never contradicts a
// task that exists: the ledger moves to rejected only while it is still
// launching and knows no task (an ECS event for the run's task records its
// ARN as soon as it arrives, see handleTaskEvent), and, with a non-zero
// lease, only while this invocation holds the claim. If the ledger learned
// of a task meanwhile, the run is accepted instead.
func (d *Dispatcher) rejectLaunch(ctx context.Context, runID, job, queueURL string, rej rejection, lease time.Time, a audit) error {
	err := d.ledger.Reject(ctx, runID, rej.code, rej.reason, lease)
	if errors.Is(err, ledger.ErrConditionFailed) {
		it, ok, gerr := d.ledger.Get(ctx, runID)
		switch {
		case gerr != nil:
			return gerr
		case ok && it.TaskARN != "":
			a.Reason = "a task exists for the run, so it is accepted rather than rejected (" + rej.code + ")"
			return d.accept(ctx, runID, job, it.TaskARN, queueURL, a)
		case ok && it.Status == ledger.Rejected:
			return d.rejectTo(ctx, runID, queueURL, rejection{it.RejectCode, it.Reason}, a)
		default:
			return fmt.Errorf("run %s changed in the ledger while its launch was being refused (status %q); will look again", runID, it.Status)
		}
	}
	if err != nil {
		return err
	}
	return d.rejectTo(ctx, runID, queueURL, rej, a)
}

// reject writes the rejected record to the run's queue (created for the
// purpose) and ends the run in the ledger.
func (d *Dispatcher) reject(ctx context.Context, req *protocol.Request, p identity.Principal, rej rejection, a audit) error {
	queueURL, err := d.runQueue(ctx, req, p)
	if err != nil {
		return err
	}
	return d.rejectTo(ctx, req.RunID, queueURL, rej, a)
}

func (d *Dispatcher) rejectTo(ctx context.Context, runID, queueURL string, rej rejection, a audit) error {
	rec := d.record(protocol.TypeRejected, protocol.SourceDispatcher, 1)
	rec.Rejected = &protocol.Rejected{Code: rej.code, Reason: rej.reason}
	if err := d.send(ctx, queueURL, runID, rec); err != nil {
		return err
	}
	it, err := d.ledger.RejectionSent(ctx, runID, queueURL, d.now())
	if err != nil {
		return err
	}
	if err := d.releaseSlot(ctx, it.Job, runID); err != nil {
		return err
	}
	d.freeRunSlot(ctx, it)
	a.Decision, a.Reason = DecisionRejected, rej.reason
	d.write(ctx, a)
	ev := protocol.RunEvent{RunID: runID, Job: a.Job, State: protocol.EventRejected, RejectCode: rej.code, Reason: rej.reason, Requester: a.Principal}
	if a.Requester != nil {
		ev.ClaimedRequester = a.Requester.String()
	}
	d.emit(ctx, ev)
	return nil
}

// launch starts the job's task and reports accepted; a launch that ECS
// refuses becomes a launch-failed rejection.
func (d *Dispatcher) launch(ctx context.Context, req *protocol.Request, p identity.Principal, cj checkedJob, a audit) error {
	queueURL, err := d.runQueue(ctx, req, p)
	if err != nil {
		return err
	}
	if d.taskDefs[req.Job] == "" {
		// Never RunTask by family: that runs whatever revision was
		// registered last, by anyone who may register one.
		return d.rejectLaunch(ctx, req.RunID, req.Job, queueURL, rejection{protocol.RejectLaunch,
			"could not start the task: job " + req.Job + " has no pinned task definition revision (" + protocol.EnvTaskRevisions + "); redeploy the broker stack"}, time.Time{}, a)
	}
	if ok, err := d.awaitApproval(ctx, req, queueURL, a); !ok || err != nil {
		return err // awaiting approval (approval.go)
	}
	if ok, err := d.admit(ctx, req, queueURL, a); !ok || err != nil {
		return err // refused or queued (concurrency.go)
	}
	done, start, err := d.launchWarm(ctx, req, p, cj, queueURL, a) // warm.go
	if done || err != nil {
		return err
	}
	// The job's deadline counts from the request, not from this invocation,
	// so that a retried launch sends RunTask exactly the same input as the
	// first attempt (ECS may refuse a clientToken reused with other input).
	taskARN, err := d.runTask(ctx, d.taskInput(req, p, cj, queueURL, req.RequestedAt))
	var lf *launchError
	if errors.As(err, &lf) {
		// A definite refusal: ECS answered and started nothing.
		return d.rejectLaunch(ctx, req.RunID, req.Job, queueURL, rejection{protocol.RejectLaunch, "could not start the task: " + lf.reason}, time.Time{}, a)
	}
	if err != nil {
		// Out of time, or an ambiguous failure (dropped connection, 5xx,
		// throttling): the task may exist. Lambda retries after the lease,
		// and the retry looks for the task before anything else.
		return err
	}
	return d.acceptWith(ctx, req.RunID, req.Job, taskARN, queueURL, a, start)
}

// accept records the task in the ledger, then writes accepted. The ledger
// comes first so that a retry after a crash knows the task exists.
func (d *Dispatcher) accept(ctx context.Context, runID, job, taskARN, queueURL string, a audit) error {
	return d.acceptWith(ctx, runID, job, taskARN, queueURL, a, warmStart{})
}

// acceptWith is accept for a run whose start (warm or cold) is known.
func (d *Dispatcher) acceptWith(ctx context.Context, runID, job, taskARN, queueURL string, a audit, w warmStart) error {
	var it ledger.Item
	var err error
	if w.slot != "" {
		it, err = d.ledger.StartWarm(ctx, runID, taskARN, queueURL, w.slot, w.running)
	} else {
		it, err = d.ledger.Start(ctx, runID, taskARN, queueURL) // after an ECS event recorded the task's end, that status stays
	}
	if err != nil {
		return err
	}
	rec := d.record(protocol.TypeAccepted, protocol.SourceDispatcher, 1)
	rec.Accepted = &protocol.Accepted{Job: job, TaskARN: taskARN, Account: d.set.AccountID,
		AccountAlias: d.cfg.Broker.AccountAlias, Region: d.set.Region, RequestedBy: it.RequestedBy,
		Start: w.start, Warm: w.size, WarmBusy: w.busy}
	if it.Approval == ledger.ApprovalApproved {
		rec.Accepted.ApprovedBy = it.ApprovalBy // approval.go
	}
	if err := d.send(ctx, queueURL, runID, rec); err != nil {
		return err
	}
	if err := d.ledger.AcceptanceSent(ctx, runID, d.now()); err != nil {
		return err
	}
	a.Decision, a.TaskARN = DecisionAccepted, taskARN
	d.write(ctx, a)
	d.emit(ctx, runEvent(protocol.EventStarted, it))
	defer d.replenish(ctx, job, a.Principal) // the access's next spare queue (spare.go)
	if !it.CancelAsked.IsZero() {
		// A cancel arrived while the task was being started.
		if err := d.stopTask(ctx, runID, taskARN, cancelReason(it), ""); err != nil {
			return err
		}
	}
	return nil
}
