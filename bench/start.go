package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// The start section: publish → first job line as deploy-trigger prints it,
// through a second local broker whose agent models a Fargate cold start of
// -start-delay (broker-local's -task-start-delay). The runs of a scenario
// are published at once, so the section takes about one delay, not one
// per run.
//
// A scenario is a kind of start. Today there is one: cold (every run
// waits for a new task). Warm runners (a catalogue's `warm: N`) add two:
// warm (runs of a job with idle warm runners, start_warm_p50_ms and
// start_warm_p99_ms) and exhausted (more runs at once than the job has
// warm runners, start_exhausted_p50_ms): a job in testdata/broker.yaml
// and an entry in startScenarios each.

// startScenario is one kind of start: runs runs of job, all at once.
type startScenario struct {
	name   string // the figures' infix: start_<name>_p50_ms…
	job    string
	params []string
	check  func() func([]byte, time.Time) error // a fresh checker of the job's output per run
	runs   int
	what   string // the note of its p50
}

func startScenarios(o options) []startScenario {
	return []startScenario{
		{name: "cold", job: "lines", params: []string{"lines=1", "size=20"}, check: func() func([]byte, time.Time) error { return linesChecker(20) },
			runs: o.startRuns, what: fmt.Sprintf("%d runs at once, each a new task after a modelled cold start of %s", o.startRuns, o.startDelay)},
	}
}

// start measures every scenario and adds its figures.
func (b *bencher) start(ctx context.Context, add func(name, value, note string)) error {
	dir := filepath.Join(b.tmp, "start")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	o := b.o
	o.brokerStartDelay = o.startDelay
	broker, taskLogs, err := startBroker(ctx, o, b.self, dir)
	if err != nil {
		return err
	}
	defer broker.Close()
	sb := *b // the same bench, against the broker with the modelled start
	sb.broker, sb.taskLogs = broker, taskLogs
	for _, sc := range startScenarios(b.o) {
		fmt.Fprintf(b.stderr, "start %s: %d runs of %s at once, modelled task start %s …\n", sc.name, sc.runs, sc.job, b.o.startDelay)
		firsts, err := sb.startRuns(ctx, sc)
		if err != nil {
			return fmt.Errorf("start %s: %w", sc.name, err)
		}
		startFigures(sc, firsts, b.o.startDelay, add)
	}
	return nil
}

// startRuns runs the scenario's runs at once and returns each run's
// deploy-trigger start → first job line, sorted.
func (b *bencher) startRuns(ctx context.Context, sc startScenario) ([]time.Duration, error) {
	firsts := make([]time.Duration, sc.runs)
	errs := make([]error, sc.runs)
	var wg sync.WaitGroup
	for i := range sc.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := b.trigger(ctx, false, sc.job, sc.params, sc.check())
			if err == nil && st.lines == 0 {
				err = fmt.Errorf("run %s printed no job line", st.runID)
			}
			firsts[i], errs[i] = st.firstLine, err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(firsts)
	return firsts, nil
}

// startFigures adds a scenario's figures: p50 and p99 of publish → first
// line, and the p50 of what it took beyond the modelled task start.
func startFigures(sc startScenario, sorted []time.Duration, delay time.Duration, add func(name, value, note string)) {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	p50, p99 := percentile(sorted, 0.50), percentile(sorted, 0.99)
	prefix := "start_" + sc.name + "_"
	add(prefix+"p50_ms", ms(p50), "deploy-trigger start (publish) → first job line on its stdout; "+sc.what)
	add(prefix+"p99_ms", ms(p99), fmt.Sprintf("min %s, p25 %s, p75 %s, p90 %s, max %s ms", ms(sorted[0]), ms(percentile(sorted, 0.25)),
		ms(percentile(sorted, 0.75)), ms(percentile(sorted, 0.90)), ms(sorted[len(sorted)-1])))
	add(prefix+"overhead_p50_ms", ms(p50-delay), "p50 beyond the modelled task start: publish, dispatcher, RunTask, agent poll, runner, queue, trigger")
}

// percentile is the p-th value of sorted (nearest rank, the larger).
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
