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

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

// The start section: publish → first job line as deploy-trigger prints it,
// through a second local broker whose agent models a Fargate cold start of
// -start-delay (broker-local's -task-start-delay), and whose catalogue has
// the jobs of testdata/start-jobs.yaml besides the bench's. It waits until
// their warm runners are idle, then measures three scenarios:
//
//   - cold: runs of a job without warm runners, published at once (the
//     section takes about one delay, not one per run);
//   - warm: runs of a job with more idle warm runners than runs, one after
//     another, each taken by a warm runner (start_warm_p50_ms, _p99_ms);
//   - exhausted: a burst of runs, published at once, of a job with one
//     warm runner: all but one find none free and start a task of their own
//     (start_exhausted_p50_ms, over those only).
//
// Every run of warm must say it ran on a warm runner, and the runs counted
// as exhausted are those whose deploy-trigger printed the cold fallback's
// notice: the figures are of the start they name, not of the job.

// startScenario is one kind of start: runs runs of job.
type startScenario struct {
	name     string // the figures' infix: start_<name>_p50_ms…
	job      string
	params   []string
	runs     int
	oneByOne bool   // published one after another, not at once
	want     string // the start every counted run must report (startOf), "" for any
	count    string // the start of the runs counted in the figures, "" for all
	what     string // the note of its p50
}

func startScenarios(o options) []startScenario {
	small := []string{"lines=1", "size=20"}
	return []startScenario{
		{name: "cold", job: "lines", params: small, runs: o.startRuns,
			what: fmt.Sprintf("%d runs at once, each a new task after a modelled cold start of %s", o.startRuns, o.startDelay)},
		{name: "warm", job: "warmlines", params: small, runs: o.startRuns, oneByOne: true, want: startWarm,
			what: fmt.Sprintf("%d runs one after another, each taken by an idle warm runner (the job has 20)", o.startRuns)},
		{name: "exhausted", job: "burst", params: small, runs: o.startRuns + 1, count: startExhausted,
			what: fmt.Sprintf("the %d runs of a burst of %d at once that found the job's one warm runner busy: a new task each, modelled cold start %s", o.startRuns, o.startRuns+1, o.startDelay)},
	}
}

// start measures every scenario and adds its figures.
func (b *bencher) start(ctx context.Context, add func(name, value, note string)) error {
	dir := filepath.Join(b.tmp, "start")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	o := b.o
	o.brokerStartDelay, o.startCatalogue = o.startDelay, true
	broker, taskLogs, err := startBroker(ctx, o, b.self, dir)
	if err != nil {
		return err
	}
	defer broker.Close()
	sb := *b // the same bench, against the broker with the modelled start
	sb.broker, sb.taskLogs, sb.startOnly = broker, taskLogs, true
	fmt.Fprintf(b.stderr, "start: waiting for the warm runners (a modelled task start of %s) …\n", b.o.startDelay)
	if err := waitWarm(ctx, broker, map[string]int{"warmlines": 20, "burst": 1}, b.o.startDelay+2*time.Minute); err != nil {
		return err
	}
	for _, sc := range startScenarios(b.o) {
		fmt.Fprintf(b.stderr, "start %s: %d runs of %s, modelled task start %s …\n", sc.name, sc.runs, sc.job, b.o.startDelay)
		firsts, err := sb.startRuns(ctx, sc)
		if err != nil {
			return fmt.Errorf("start %s: %w", sc.name, err)
		}
		if len(firsts) == 0 {
			return fmt.Errorf("start %s: no run started as %q", sc.name, sc.count)
		}
		startFigures(sc, firsts, b.o.startDelay, add)
	}
	return nil
}

// waitWarm waits until each job has its warm runners idle, reading the
// broker's ledger as the dispatcher writes it.
func waitWarm(ctx context.Context, b *localbroker.Broker, want map[string]int, limit time.Duration) error {
	cfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		return err
	}
	l := ledger.New(dynamodb.NewFromConfig(cfg), b.Resources.LedgerTable, time.Hour)
	deadline := time.Now().Add(limit)
	for job, n := range want {
		for {
			p, err := l.GetWarm(ctx, job)
			if err != nil {
				return err
			}
			idle := len(p.Idle())
			if idle >= n {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("job %s has %d idle warm runners after %s, want %d (the broker's log: broker.log in the bench's directory)", job, idle, limit, n)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond): // polling the ledger
			}
		}
	}
	return nil
}

// startRuns runs the scenario's runs and returns, sorted, each counted
// run's deploy-trigger start → first job line.
func (b *bencher) startRuns(ctx context.Context, sc startScenario) ([]time.Duration, error) {
	stats := make([]triggerStats, sc.runs)
	errs := make([]error, sc.runs)
	one := func(i int) {
		st, err := b.trigger(ctx, false, sc.job, sc.params, linesChecker(20))
		if err == nil && st.lines == 0 {
			err = fmt.Errorf("run %s printed no job line", st.runID)
		}
		if err == nil && sc.want != "" && st.start != sc.want {
			err = fmt.Errorf("run %s started %q, want %q", st.runID, st.start, sc.want)
		}
		stats[i], errs[i] = st, err
	}
	var wg sync.WaitGroup
	for i := range sc.runs {
		if sc.oneByOne {
			one(i)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); one(i) }()
	}
	wg.Wait()
	var firsts []time.Duration
	for i, err := range errs {
		if err != nil {
			return nil, err
		}
		if sc.count == "" || stats[i].start == sc.count {
			firsts = append(firsts, stats[i].firstLine)
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
	if sc.name != "warm" {
		add(prefix+"overhead_p50_ms", ms(p50-delay), "p50 beyond the modelled task start: publish, dispatcher, RunTask, agent poll, runner, queue, trigger")
	}
}

// percentile is the p-th value of sorted (nearest rank, the larger).
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
