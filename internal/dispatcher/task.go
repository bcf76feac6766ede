package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// launchError is a definite refusal of RunTask: ECS answered and started
// nothing (failures in the answer, AccessDenied, InvalidParameter,
// ClientException…). Only this becomes a launch-failed rejection.
type launchError struct{ reason string }

func (e *launchError) Error() string { return e.reason }

// runTask calls RunTask, retrying throttling, server errors and dropped
// connections with backoff (beyond the SDK's own attempts) while the
// invocation has time. After an ambiguous failure it first looks for a task
// the failed call may have started, so a retry never starts a second one.
//
// Only a definite refusal is a *launchError. When the invocation runs out
// of time after ambiguous failures, the last call may have started the task
// even though ListTasks (eventually consistent) does not show it yet: that
// is a plain error, so that Lambda retries after the lease and the retry
// settles it (findTask, then RunTask with the same clientToken, which AWS
// answers with the task the earlier call started).
func (d *Dispatcher) runTask(ctx context.Context, in *ecs.RunTaskInput) (string, error) {
	runID := aws.ToString(in.StartedBy)
	backoff := d.backoff
	start := time.Now()
	for attempt := 1; ; attempt++ {
		// The call, with the SDK's own retries, may not eat the time the
		// bookkeeping after it needs.
		callCtx, cancel := context.WithTimeout(ctx, max(d.timeLeft(ctx), time.Second))
		out, err := d.ecs.RunTask(callCtx, in)
		cancel()
		if err == nil {
			if len(out.Failures) > 0 {
				f := out.Failures[0]
				why := aws.ToString(f.Reason)
				if det := aws.ToString(f.Detail); det != "" {
					why += " (" + det + ")"
				}
				return "", &launchError{oneLine("ECS refused the task: " + why)}
			}
			if len(out.Tasks) == 0 || aws.ToString(out.Tasks[0].TaskArn) == "" {
				return "", &launchError{"ECS started no task and gave no reason"}
			}
			return aws.ToString(out.Tasks[0].TaskArn), nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("starting the task of run %s: %w", runID, err)
		}
		if !transient(err) {
			return "", &launchError{describeAWSError(err)}
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		d.log.Warn("RunTask failed; retrying", "run_id", runID, "attempt", attempt, "wait", wait.String(), "error", oneLine(err.Error()))
		if !d.pause(ctx, wait) {
			if ctx.Err() == nil && !isThrottle(err) {
				// The last call may have started the task before it was cut off.
				if arn, ferr := d.findTask(ctx, runID, true); ferr == nil && arn != "" {
					return arn, nil
				}
			}
			maybe := "the last may have started the task, so the retry looks for it first"
			if isThrottle(err) {
				maybe = "throttled"
			}
			return "", fmt.Errorf("RunTask for run %s did not succeed within %s (%d attempts; %s): %s",
				runID, time.Since(start).Round(time.Millisecond), attempt, maybe, describeAWSError(err))
		}
		backoff = min(2*backoff, d.maxBackoff)
		if !isThrottle(err) {
			// The call may have reached ECS and started the task anyway.
			arn, ferr := d.findTask(ctx, runID, true)
			if ferr == nil && arn != "" {
				return arn, nil
			}
		}
	}
}

var throttleCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "TooManyRequestsException": true,
	"RequestLimitExceeded": true, "RequestThrottled": true, "SlowDown": true,
}

var serverCodes = map[string]bool{
	"ServerException": true, "ServiceUnavailable": true, "ServiceUnavailableException": true,
	"InternalFailure": true, "InternalError": true, "InternalServerError": true,
}

func isThrottle(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && throttleCodes[ae.ErrorCode()]
}

// ambiguousCodes are errors after which the call's effect is unknown: the
// request may have been carried out although no answer says so.
var ambiguousCodes = map[string]bool{
	"RequestTimeout": true, "RequestTimeoutException": true, "PriorRequestNotComplete": true,
}

// transient reports whether a failed call may succeed when repeated:
// throttling, server faults (5xx), timeouts and failures without any answer
// from AWS. Apart from throttling, these are also ambiguous: the call may
// have taken effect. Every other API error is a definite refusal.
func transient(err error) bool {
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) && (hs.HTTPStatusCode() >= 500 || hs.HTTPStatusCode() == 429) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true
	}
	code := ae.ErrorCode()
	return throttleCodes[code] || serverCodes[code] || ambiguousCodes[code] || ae.ErrorFault() == smithy.FaultServer
}

// describeAWSError is "Code: message" for an AWS error, for a user to read.
func describeAWSError(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := ae.ErrorMessage()
		if msg == "" {
			return ae.ErrorCode()
		}
		return oneLine(ae.ErrorCode() + ": " + msg)
	}
	return oneLine(err.Error())
}

// findTask returns the ARN of the run's task ("" if none): the task whose
// startedBy is the run id. ListTasks lists running tasks by default; with
// stopped it also looks among recently stopped ones.
func (d *Dispatcher) findTask(ctx context.Context, runID string, stopped bool) (string, error) {
	statuses := []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning}
	if stopped {
		statuses = append(statuses, ecstypes.DesiredStatusStopped)
	}
	for _, st := range statuses {
		arns, err := d.listTasks(ctx, runID, st)
		if err != nil {
			return "", err
		}
		if len(arns) > 0 {
			return arns[0], nil
		}
	}
	return "", nil
}

// stopTask stops a run's task with a reason ECS shows and keeps. It stops
// only what ListTasks finds started by the run in the broker's cluster
// (issue 24): taskARN, what the caller believes the run's task is (from the
// ledger, where an ECS event may have put it, or from an event), is never
// the target, so an event or ledger entry naming another run's task cannot
// make the dispatcher stop it. A run whose task is not listed yet (ListTasks
// is eventually consistent) is an error: the invocation is retried.
func (d *Dispatcher) stopTask(ctx context.Context, runID, taskARN, reason, by string) error {
	found, err := d.stopRunTasks(ctx, runID, taskARN, reason)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no task started by run %s is listed in cluster %s (the run's task is believed to be %s): nothing stopped; will look again", runID, d.set.Cluster, taskARN)
	}
	return d.ledger.TaskStopped(ctx, runID, by, d.now())
}

// stopRunTasks stops the tasks ListTasks finds running in the broker's
// cluster started by the run; found says it found any, running or already
// stopped. believed is the task the caller thinks is the run's, for the log.
func (d *Dispatcher) stopRunTasks(ctx context.Context, runID, believed, reason string) (found bool, err error) {
	by, err := d.taskStarter(ctx, runID) // warmevent.go
	if err != nil {
		return false, err
	}
	running, err := d.listTasks(ctx, by, ecstypes.DesiredStatusRunning)
	if err != nil {
		return false, err
	}
	if len(running) == 0 {
		// Stopping or stopped already (the job exited): nothing to stop.
		stopped, err := d.listTasks(ctx, by, ecstypes.DesiredStatusStopped)
		return len(stopped) > 0, err
	}
	for _, arn := range running {
		if arn != believed {
			d.log.Warn("stopping the run's task as listed by ECS, not the one believed", "run_id", runID, "listed", arn, "believed", believed)
		}
		if _, err := d.ecs.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(d.set.Cluster), Task: aws.String(arn), Reason: aws.String(reason)}); err != nil {
			return true, fmt.Errorf("stopping task %s of run %s: %w", arn, runID, err)
		}
	}
	return true, nil
}

// listTasks lists the tasks of the broker's cluster started by the run,
// with the given desired status.
func (d *Dispatcher) listTasks(ctx context.Context, runID string, st ecstypes.DesiredStatus) ([]string, error) {
	var arns []string
	in := &ecs.ListTasksInput{Cluster: aws.String(d.set.Cluster), StartedBy: aws.String(runID), DesiredStatus: st}
	for {
		out, err := d.ecs.ListTasks(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing the tasks of run %s: %w", runID, err)
		}
		arns = append(arns, out.TaskArns...)
		if aws.ToString(out.NextToken) == "" {
			return arns, nil
		}
		in.NextToken = out.NextToken
	}
}

// cancelReason says who cancelled, within StopTask's 255 characters: the
// verified principal of the cancel, recorded in the ledger when the cancel
// came while the task was being started.
func cancelReason(it ledger.Item) string {
	by := it.CancelledBy
	if by == "" {
		by = "an unrecorded principal"
	}
	return truncateRunes(oneLine("deploy-broker run "+it.RunID+" cancelled by "+by), 250)
}
