package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// HandleRequest handles one protocol request (an SNS message body).
func (d *Dispatcher) HandleRequest(ctx context.Context, body []byte) error {
	req, err := protocol.DecodeRequest(body)
	if err != nil {
		// Malformed: there is nobody we can safely answer, only the audit log.
		d.write(ctx, audit{RunID: peekRunID(body), Decision: DecisionMalformed, Reason: err.Error()})
		return nil
	}
	switch req.Kind {
	case protocol.KindRun:
		return d.handleRun(ctx, req, body)
	case protocol.KindCancel:
		return d.handleCancel(ctx, req)
	case protocol.KindRelease:
		return d.handleRelease(ctx, req)
	}
	return nil
}

// peekRunID extracts a well-formed run id from a malformed request, for the
// audit line only.
func peekRunID(body []byte) string {
	var p struct {
		RunID string `json:"run_id"`
	}
	if json.Unmarshal(body, &p) == nil && protocol.ValidateRunID(p.RunID) == nil {
		return p.RunID
	}
	return ""
}

// rejection is a refusal with a code and a one-line reason.
type rejection struct{ code, reason string }

// check decides whether a well-formed run request may run. It uses no AWS
// call: it is the hot path measured by the handler benchmark.
func (d *Dispatcher) check(req *protocol.Request, now time.Time) (config.Job, []string, *rejection) {
	skew := d.cfg.Broker.ClockSkew.D()
	maxAge := d.cfg.Broker.MaxRequestAge.D()
	switch {
	case now.After(req.ExpiresAt.Add(skew)):
		return config.Job{}, nil, &rejection{protocol.RejectExpired, fmt.Sprintf("request expired at %s (broker time %s); check the CI clock or send it again", req.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case req.RequestedAt.After(now.Add(skew)):
		return config.Job{}, nil, &rejection{protocol.RejectExpired, fmt.Sprintf("request is dated %s, in the future of the broker's clock (%s); check the CI clock", req.RequestedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case req.ExpiresAt.Sub(req.RequestedAt) > maxAge:
		return config.Job{}, nil, &rejection{protocol.RejectExpired, fmt.Sprintf("request is valid for %s, longer than the broker's limit of %s", req.ExpiresAt.Sub(req.RequestedAt).Round(time.Second), maxAge)}
	}
	idTime, err := protocol.RunIDTime(req.RunID)
	if err != nil || idTime.Before(now.Add(-maxAge-skew)) || idTime.After(now.Add(skew)) {
		return config.Job{}, nil, &rejection{protocol.RejectReplayed, fmt.Sprintf("run id %s was not made for this request (its time is %s); make a new run id for every run", req.RunID, idTime.Format(time.RFC3339))}
	}
	job, ok := d.cfg.Jobs[req.Job]
	if !ok {
		return config.Job{}, nil, &rejection{protocol.RejectUnknownJob, fmt.Sprintf("job %q is not in this broker's catalogue (jobs: %s)", req.Job, strings.Join(d.cfg.JobNames(), ", "))}
	}
	argv, err := job.Render(req.Params)
	if err != nil {
		return job, nil, &rejection{protocol.RejectBadParams, fmt.Sprintf("job %q: %v", req.Job, err)}
	}
	return job, argv, nil
}

func (d *Dispatcher) handleRun(ctx context.Context, req *protocol.Request, body []byte) error {
	now := d.now()
	job, argv, rej := d.check(req, now)
	a := audit{RunID: req.RunID, Kind: req.Kind, Job: req.Job, Requester: req.Requester,
		Params: redactParams(req.Params, job.SecretParams())}

	sum := sha256.Sum256(body)
	item := ledgerItem{RunID: req.RunID, Status: StatusLaunching, Job: req.Job, Params: a.Params,
		Requester: req.Requester.String(), RequestHash: hex.EncodeToString(sum[:]), RequestedAt: req.RequestedAt, CreatedAt: now}
	if rej != nil {
		item.Status, item.Reason = StatusRejected, rej.reason
	}
	// Claim the run id before anything else: a second delivery stops here.
	if err := d.ledger.claim(ctx, item); err != nil {
		if errors.Is(err, errAlreadyClaimed) {
			return d.duplicate(ctx, req, item, a)
		}
		return err
	}
	queueURL, err := d.createQueue(ctx, req.RunID, req.Job, req)
	if err != nil {
		return err
	}
	if rej != nil {
		return d.reject(ctx, req.RunID, queueURL, *rej, a)
	}
	return d.launch(ctx, req, job, argv, queueURL, a)
}

// duplicate handles a run id that is already in the ledger: a second
// delivery of the same request does nothing; a different request reusing the
// run id is refused in the audit log (the queue belongs to the first one).
func (d *Dispatcher) duplicate(ctx context.Context, req *protocol.Request, item ledgerItem, a audit) error {
	prev, ok, err := d.ledger.get(ctx, req.RunID)
	if err != nil {
		return err
	}
	if ok && prev.RequestHash != item.RequestHash {
		a.Decision, a.Reason = DecisionReplayed, "run id was already used by a different request"
		d.write(ctx, a)
		return nil
	}
	a.Decision, a.Reason, a.TaskARN = DecisionDuplicate, "request already handled (status "+prev.Status+")", prev.TaskARN
	d.write(ctx, a)
	return nil
}

func (d *Dispatcher) reject(ctx context.Context, runID, queueURL string, rej rejection, a audit) error {
	rec := d.record(protocol.TypeRejected, protocol.SourceDispatcher, 1)
	rec.Rejected = &protocol.Rejected{Code: rej.code, Reason: rej.reason}
	if err := d.send(ctx, queueURL, runID, rec); err != nil {
		return err
	}
	if err := d.ledger.update(ctx, runID, map[string]string{"queue_url": queueURL, "ended_at": d.now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return err
	}
	a.Decision, a.Reason = DecisionRejected, rej.reason
	d.write(ctx, a)
	return nil
}

// launch starts the job's task and reports accepted.
func (d *Dispatcher) launch(ctx context.Context, req *protocol.Request, job config.Job, argv []string, queueURL string, a audit) error {
	now := d.now()
	env := []ecstypes.KeyValuePair{
		{Name: aws.String(protocol.EnvRunID), Value: aws.String(req.RunID)},
		{Name: aws.String(protocol.EnvQueueURL), Value: aws.String(queueURL)},
		{Name: aws.String(protocol.EnvJob), Value: aws.String(req.Job)},
		{Name: aws.String(protocol.EnvDeadline), Value: aws.String(now.Add(job.Timeout.D()).UTC().Format(time.RFC3339))},
		{Name: aws.String(protocol.EnvHeartbeat), Value: aws.String(d.cfg.Runner.Heartbeat.D().String())},
		{Name: aws.String(protocol.EnvGrace), Value: aws.String(d.cfg.Runner.Grace.D().String())},
	}
	if names := job.RedactNames(); len(names) > 0 {
		env = append(env, ecstypes.KeyValuePair{Name: aws.String(protocol.EnvRedact), Value: aws.String(strings.Join(names, ","))})
	}
	assign := ecstypes.AssignPublicIpDisabled
	if d.set.AssignPublicIP {
		assign = ecstypes.AssignPublicIpEnabled
	}
	out, err := d.ecs.RunTask(ctx, &ecs.RunTaskInput{
		Cluster:        aws.String(d.set.Cluster),
		TaskDefinition: aws.String(d.cfg.TaskFamily(req.Job)),
		LaunchType:     ecstypes.LaunchTypeFargate,
		Count:          aws.Int32(1),
		StartedBy:      aws.String(req.RunID),
		ClientToken:    aws.String(req.RunID),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: d.set.Subnets, SecurityGroups: d.set.SecurityGroups, AssignPublicIp: assign,
		}},
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: aws.String(config.ContainerName), Command: argv, Environment: env,
		}}},
		Tags: []ecstypes.Tag{
			{Key: aws.String("deploy-broker:run-id"), Value: aws.String(req.RunID)},
			{Key: aws.String("deploy-broker:job"), Value: aws.String(req.Job)},
			{Key: aws.String("deploy-broker:requester"), Value: aws.String(tagValue(req.Requester.String()))},
		},
	})
	if err == nil && len(out.Failures) > 0 {
		f := out.Failures[0]
		err = fmt.Errorf("%s: %s", aws.ToString(f.Reason), aws.ToString(f.Detail))
	}
	if err == nil && len(out.Tasks) == 0 {
		err = errors.New("ECS returned no task")
	}
	if err != nil {
		if ctx.Err() != nil {
			return err // the invocation is ending: let Lambda retry
		}
		rej := rejection{protocol.RejectLaunch, "could not start the task: " + oneLine(err.Error())}
		if uerr := d.ledger.update(ctx, req.RunID, map[string]string{"status": StatusRejected, "reason": rej.reason}); uerr != nil {
			return uerr
		}
		return d.reject(ctx, req.RunID, queueURL, rej, a)
	}
	taskARN := aws.ToString(out.Tasks[0].TaskArn)
	if err := d.ledger.update(ctx, req.RunID, map[string]string{"status": StatusAccepted, "task_arn": taskARN, "queue_url": queueURL}); err != nil {
		return err
	}
	rec := d.record(protocol.TypeAccepted, protocol.SourceDispatcher, 1)
	rec.Accepted = &protocol.Accepted{Job: req.Job, TaskARN: taskARN, Account: d.set.AccountID,
		AccountAlias: d.cfg.Broker.AccountAlias, Region: d.set.Region}
	if err := d.send(ctx, queueURL, req.RunID, rec); err != nil {
		return err
	}
	a.Decision, a.TaskARN = DecisionAccepted, taskARN
	d.write(ctx, a)
	return nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
