package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/awsclient"
	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Warm mode (protocol.EnvWarmInbox; docs/RUNNER.md, "Warm mode"). The
// runner of a warm slot waits on its inbox, holding only its task role:
// no deployment role is assumed and no job runs until an assignment comes.
// It takes one, checks it is for its own job, deletes it, and then runs
// exactly as a cold runner does with the assignment's values. It runs one
// run and exits; with no assignment for DefaultWarmIdle it exits too, and
// the dispatcher starts a fresh runner in its place.

// DefaultWarmIdle is how long a warm runner waits for its assignment.
const DefaultWarmIdle = 12 * time.Hour

// InboxAPI is the part of the SQS client a warm runner uses on its inbox.
type InboxAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// ErrWarmIdle: no assignment came within the idle limit.
var ErrWarmIdle = errors.New("no assignment came")

// AwaitAssignment long-polls inbox until one message comes, deletes it and
// returns it as an assignment for job, or ErrWarmIdle after idle. A
// message that is not a valid assignment for job is an error (the run it
// may be cannot be run here; the dispatcher learns of it when the task
// stops): only the dispatcher can write to the inbox, so it is a fault,
// never something to wait past.
func AwaitAssignment(ctx context.Context, c InboxAPI, inbox, job string, idle time.Duration, log *slog.Logger) (*protocol.Assignment, error) {
	until := time.Now().Add(idle)
	backoff := time.Second
	for {
		wait := min(20*time.Second, time.Until(until).Round(time.Second))
		if wait <= 0 {
			return nil, ErrWarmIdle
		}
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(inbox), MaxNumberOfMessages: 1, WaitTimeSeconds: int32(wait / time.Second)})
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			// Throttling passes; a refusal (a policy that lets this runner
			// not read its inbox) does not, and is logged once a minute at
			// most until the idle limit replaces the runner.
			log.Warn("warm runner: receiving from the inbox failed; trying again", "err", err.Error(), "wait", backoff.String())
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		if len(out.Messages) == 0 {
			continue
		}
		m := out.Messages[0]
		// Taken: whatever it holds, it is not left for another receive.
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(inbox), ReceiptHandle: m.ReceiptHandle}); err != nil {
			log.Warn("warm runner: could not delete the assignment from the inbox (the runner exits after this run anyway)", "err", err.Error())
		}
		a, err := protocol.DecodeAssignment([]byte(aws.ToString(m.Body)))
		if err != nil {
			return nil, fmt.Errorf("the inbox held a message that is not a valid assignment: %w", err)
		}
		if a.Job != job {
			return nil, fmt.Errorf("the assignment of run %s is for job %q, but this warm runner is job %q's: refused", a.RunID, a.Job, job)
		}
		return a, nil
	}
}

// warmRun waits for the warm runner's assignment and returns the job's argv
// and the runner's environment with the assignment's values, as a cold
// runner of that run would have them. ok false: exit with code.
func warmRun(ctx context.Context, environ []string, log *slog.Logger) (args, env []string, code int, ok bool) {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, found := strings.Cut(kv, "="); found {
			vars[k] = v
		}
	}
	inbox, job := vars[protocol.EnvWarmInbox], vars[protocol.EnvJob]
	idle := DefaultWarmIdle
	if v := vars[protocol.EnvWarmIdle]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			log.Error("cannot wait for an assignment", "err", protocol.EnvWarmIdle+" is not a positive duration: "+v)
			return nil, nil, exitcode.Usage, false
		}
		idle = d
	}
	if !protocol.ValidJobName(job) {
		log.Error("cannot wait for an assignment", "err", protocol.EnvJob+" does not name the warm runner's job")
		return nil, nil, exitcode.Usage, false
	}
	awsCfg, err := awsclient.Load(ctx, awsclient.Options{})
	if err != nil {
		log.Error("cannot wait for an assignment: no AWS configuration", "err", err.Error())
		return nil, nil, exitcode.Usage, false
	}
	log.Info("warm runner waiting for its assignment", "job", job, "inbox", inbox, "idle_limit", idle.String())
	a, err := AwaitAssignment(ctx, sqs.NewFromConfig(awsCfg), inbox, job, idle, log)
	switch {
	case errors.Is(err, ErrWarmIdle):
		log.Info("warm runner idle for its whole limit: exiting to be replaced", "idle_limit", idle.String())
		return nil, nil, 0, false
	case err != nil && ctx.Err() != nil:
		log.Info("warm runner stopped while it waited", "err", err.Error())
		return nil, nil, 0, false
	case err != nil:
		log.Error("warm runner refused its assignment", "err", err.Error())
		return nil, nil, exitcode.Usage, false
	}
	log.Info("warm runner assigned", "run_id", a.RunID, "slot", a.Slot)
	return a.Argv, append(environ, a.Env()...), 0, true
}

func warmMode(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, protocol.EnvWarmInbox+"=") && len(kv) > len(protocol.EnvWarmInbox)+1 {
			return true
		}
	}
	return false
}
