package trigger

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// startBreakdown is where a run's start time went: each step of the start
// the ledger knows, as an offset from the request. `show` prints it, and
// --output json gives it as the run's "start".
type startBreakdown struct {
	// From is the time the offsets count from: the request's (the
	// trigger's clock), else the claim's (the broker's).
	From  string      `json:"from"`
	Steps []startStep `json:"steps"`
}

// startStep is one step of a start, Step one of the startStep* names;
// a breakdown's steps are in time order.
type startStep struct {
	Step     string `json:"step"`
	At       string `json:"at"`
	OffsetMS int64  `json:"offset_ms"`
}

// The steps of a start, in their order. A warm run (a run assigned to an
// already running task: the ledger names its slot) has instead of the
// task's steps one of its own, the time that runner's task had started,
// usually before the request.
const (
	startStepWarm        = "warm_runner_started" // the warm runner the run was given to was RUNNING
	startStepAccepted    = "accepted"            // the dispatcher wrote accepted to the run's queue
	startStepCreated     = "task_created"        // ECS created the task (RunTask)
	startStepPullStarted = "pull_started"        // the image pull began
	startStepPullStopped = "pull_stopped"        // the image pull ended
	startStepStarted     = "task_started"        // the task is RUNNING
)

// startLabels are the steps' names in show's text output.
var startLabels = map[string]string{
	startStepAccepted: "accepted", startStepCreated: "task created", startStepPullStarted: "image pull started",
	startStepPullStopped: "image pull stopped", startStepStarted: "task started",
	startStepWarm: "warm runner started (the run was given to it)",
}

// startOf is a run's start breakdown; nil for a run whose task start the
// ledger does not know (no ECS event gave it, or a run of a dispatcher
// older than the breakdown).
func startOf(it ledger.Item) *startBreakdown {
	if it.TaskStart.IsZero() {
		return nil
	}
	from := it.RequestedAt
	if from.IsZero() {
		from = it.CreatedAt
	}
	if from.IsZero() {
		return nil
	}
	b := &startBreakdown{From: ledger.Stamp(from)}
	step := func(name string, at time.Time) {
		if !at.IsZero() {
			b.Steps = append(b.Steps, startStep{Step: name, At: ledger.Stamp(at), OffsetMS: at.Sub(from).Milliseconds()})
		}
	}
	if it.Status != ledger.Rejected {
		step(startStepAccepted, it.NotifiedAt)
	}
	ts := it.TaskStart
	if it.WarmSlot != "" {
		// The task's creation and pull were the warm runner's, long
		// before the run: only when it was ready counts.
		step(startStepWarm, ts.Started)
	} else {
		step(startStepCreated, ts.Created)
		step(startStepPullStarted, ts.PullStarted)
		step(startStepPullStopped, ts.PullStopped)
		step(startStepStarted, ts.Started)
	}
	// In time order: the dispatcher writes accepted after RunTask, so
	// usually after the task's creation.
	slices.SortStableFunc(b.Steps, func(x, y startStep) int { return cmp.Compare(x.OffsetMS, y.OffsetMS) })
	return b
}

// printStart prints a start breakdown under show's other rows:
//
//	start:          from the request at 2026-12-06T05:00:00Z
//	                +0.41s   accepted
//	                +0.52s   task created
//	                …
//	                +30.61s  task started  (6.10s after the previous step)
func printStart(w io.Writer, b *startBreakdown) {
	if b == nil || len(b.Steps) == 0 {
		return
	}
	fmt.Fprintf(w, "%-15s from the request at %s\n", "start:", b.From)
	var prev int64
	for i, s := range b.Steps {
		line := fmt.Sprintf("%-15s %-9s %s", "", offsetText(s.OffsetMS), startLabels[s.Step])
		if i > 0 {
			line += fmt.Sprintf("  (%s after %s)", secondsText(s.OffsetMS-prev), startLabels[b.Steps[i-1].Step])
		}
		fmt.Fprintln(w, line)
		prev = s.OffsetMS
	}
}

// offsetText is a signed offset in seconds, "+30.61s" (negative when the
// trigger's clock is ahead of the broker's).
func offsetText(ms int64) string {
	if ms < 0 {
		return "-" + secondsText(-ms)
	}
	return "+" + secondsText(ms)
}

func secondsText(ms int64) string {
	if ms < 0 {
		return "-" + secondsText(-ms)
	}
	return fmt.Sprintf("%d.%02ds", ms/1000, ms%1000/10)
}
