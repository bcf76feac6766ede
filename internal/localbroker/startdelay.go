package localbroker

import (
	"context"
	"time"

	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// The modelled cold start (Options.TaskStartDelay). A Fargate task starts
// in phases, each visible in its ECS task state change events: PROVISIONING
// (capacity and the task's network interface), PENDING (the image pull,
// between pullStartedAt and pullStoppedAt), then the container starts and
// the task is RUNNING (startedAt). Published measurements put RunTask →
// RUNNING at 20–60 s, the interface 11–44 s of it, the pull most of the
// rest for a large image. The agent splits the delay in fixed shares:
// provisioning 40 %, image pull 40 %, container start 20 %.
var startPhases = [3]float64{0.4, 0.4, 0.2}

// ecsTime is how ECS's events write a time (an ISO 8601 string, UTC,
// milliseconds).
const ecsTime = "2006-01-02T15:04:05.000Z"

// createdAt is when ECS created the task: the emulator's createdAt if it
// gives a plausible one, else now (the agent saw the task a poll after
// RunTask).
func createdAt(task ecstypes.Task, now time.Time) time.Time {
	if c := task.CreatedAt; c != nil && !c.After(now) && now.Sub(*c) < time.Minute {
		return *c
	}
	return now
}

// provision plays a new task's start phases, sending the PROVISIONING and
// PENDING events; it returns false (having ended the task) when the task was
// stopped meanwhile or the broker is stopping. The dispatcher's RunTask has
// long returned: the emulator answered it, as ECS does, before any of this.
func (a *agent) provision(ctx context.Context, t *localTask) bool {
	phase := func(i int) time.Duration { return time.Duration(float64(a.startDelay) * startPhases[i]) }
	a.emit(ctx, t, "PROVISIONING", "RUNNING", "", "", nil)
	if !a.wait(ctx, t, phase(0)) {
		a.abort(ctx, t)
		return false
	}
	a.mu.Lock()
	t.pullStarted = time.Now()
	a.mu.Unlock()
	a.emit(ctx, t, "PENDING", "RUNNING", "", "", nil)
	if !a.wait(ctx, t, phase(1)) {
		a.abort(ctx, t)
		return false
	}
	a.mu.Lock()
	t.pullStopped = time.Now()
	a.mu.Unlock()
	if !a.wait(ctx, t, phase(2)) {
		a.abort(ctx, t)
		return false
	}
	return true
}

// wait waits d, unless the task is stopped or the agent's context ends
// first (false).
func (a *agent) wait(ctx context.Context, t *localTask, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// abort ends a task that never started its runner: stopped through ECS
// (StopTask) during its start, as ECS reports it (UserInitiated), or cut
// short because the local broker is stopping.
func (a *agent) abort(ctx context.Context, t *localTask) {
	ctx = context.WithoutCancel(ctx)
	a.mu.Lock()
	reason := t.stopReason
	a.mu.Unlock()
	if reason == "" {
		a.fail(ctx, t, "TaskFailedToStart: the local broker stopped before the task started")
		return
	}
	close(t.exited)
	a.log.Info("agent: task stopped before it started", "run_id", t.runID, "reason", reason)
	a.emit(ctx, t, "STOPPED", "STOPPED", "UserInitiated", reason, nil)
}

// signalStop ends the task's start phases (stopped through ECS, or the
// broker stopping); it may be called more than once.
func (t *localTask) signalStop() { t.stopOnce.Do(func() { close(t.stop) }) }

// addTimes puts the task's ECS timestamps into an event's detail, under
// ECS's names (a.mu held).
func (t *localTask) addTimes(detail map[string]any) {
	for name, at := range map[string]time.Time{"createdAt": t.created, "pullStartedAt": t.pullStarted, "pullStoppedAt": t.pullStopped, "startedAt": t.started} {
		if !at.IsZero() {
			detail[name] = at.UTC().Format(ecsTime)
		}
	}
}
