package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/runner"
	"github.com/deploy-broker/deploy-broker/internal/testkit/deploylog"
)

type options struct {
	lines        int
	lineBytes    int
	latencyLines int
	latencyRate  int
	rssBytes     int64
	rssSink      string
	rssRTT       time.Duration
	rssJob       string
	deployLines  int
	compress     string
	runnerBin    string
	triggerBin   string
	countingBin  string // bench/counting-runner, built by the bench
	skip         string
	startDelay   time.Duration // the start section's modelled task start (start.go)
	startRuns    int
	pairs        int // e2e/raw pairs for e2e_ratio
	// brokerStartDelay is the modelled task start of the broker
	// startBroker starts: 0, but the start section's.
	brokerStartDelay time.Duration
	startCatalogue   bool // the broker gets the start section's jobs (testdata/start-jobs.yaml)
}

type result struct {
	name, value, note string
}

// Main runs the benchmark; it returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.lines, "lines", 1_000_000, "lines the job writes for the throughput run")
	fs.IntVar(&o.lineBytes, "line-bytes", 100, "bytes per line, newline included")
	fs.IntVar(&o.latencyLines, "latency-lines", 200, "lines for the latency run")
	fs.IntVar(&o.latencyRate, "latency-rate", 20, "lines per second in the latency run")
	fs.Int64Var(&o.rssBytes, "rss-bytes", 1<<30, "bytes the job writes in the RSS run")
	fs.StringVar(&o.rssSink, "rss-sink", "counting", "where the RSS run sends: counting (in-process sink with a simulated round trip) or moto")
	fs.DurationVar(&o.rssRTT, "rss-rtt", 5*time.Millisecond, "simulated SendMessageBatch round trip of the counting sink")
	fs.StringVar(&o.rssJob, "rss-job", "lines", "what the job writes in the RSS run: lines (the synthetic lines) or deploylog (realistic deploy output)")
	fs.IntVar(&o.deployLines, "deploylog-lines", 300_000, "lines of realistic deploy output for the deploylog run")
	fs.StringVar(&o.compress, "compress", "auto", "the runner's "+runner.EnvCompress+": auto or off")
	fs.StringVar(&o.runnerBin, "runner", "", "runner binary (default: go build ./cmd/runner into a temporary directory)")
	fs.StringVar(&o.triggerBin, "trigger", "", "deploy-trigger binary (default: go build ./cmd/trigger into a temporary directory)")
	fs.StringVar(&o.skip, "skip", "", "comma-separated parts to skip: e2e,raw,receiver,deploylog,latency,rss,start")
	fs.DurationVar(&o.startDelay, "start-delay", 30*time.Second, "modelled task start (a Fargate cold start) of the start section's broker")
	fs.IntVar(&o.startRuns, "start-runs", 20, "runs per scenario of the start section (1 to 20)")
	fs.IntVar(&o.pairs, "pairs", 3, "e2e and raw runs, alternated, for e2e_ratio: the median pair's ratio is reported, every pair's in its note (1 to 9)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process (the local broker: dispatcher, agent, run log shipper, SNS loop; and the bench's own checking) to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.pairs < 1 || o.pairs > 9 {
		fmt.Fprintln(stderr, "bench: -pairs must be 1 to 9")
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	skip := map[string]bool{}
	for _, s := range strings.Split(o.skip, ",") {
		skip[strings.TrimSpace(s)] = true
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "deploy-broker-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, bin := range []struct {
		path *string
		name string
		pkg  string
	}{{&o.runnerBin, "runner", "./cmd/runner"}, {&o.triggerBin, "deploy-trigger", "./cmd/trigger"}, {&o.countingBin, "counting-runner", "./bench/counting-runner"}} {
		if *bin.path != "" {
			continue
		}
		*bin.path = filepath.Join(tmp, bin.name)
		fmt.Fprintf(stderr, "building %s …\n", bin.pkg)
		c := exec.CommandContext(ctx, "go", "build", "-o", *bin.path, bin.pkg)
		c.Stdout, c.Stderr = stderr, stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("building %s (run from the repository root or pass -runner and -trigger): %w", bin.pkg, err)
		}
	}
	fmt.Fprintln(stderr, "starting the local broker (moto_server, dispatcher, SNS loop, agent) …")
	broker, taskLogs, err := startBroker(ctx, o, self, tmp)
	if err != nil {
		return err
	}
	defer broker.Close()
	srv := broker.Server
	cfg, err := srv.AWSConfig(ctx)
	if err != nil {
		return err
	}
	client := sqs.NewFromConfig(cfg)
	b := &bencher{o: o, self: self, tmp: tmp, srv: srv, client: client, stderr: stderr, broker: broker, taskLogs: taskLogs}

	var res []result
	add := func(name, value, note string) { res = append(res, result{name, value, note}) }
	var e2eRate, rawRate, receiverRate float64
	var firstRaw float64 // the first pair's raw rate: raw_batch_lines_per_sec, receiver_ratio's base
	totalMiB := float64(o.lines*o.lineBytes) / (1 << 20)
	lineParams := []string{"lines=" + strconv.Itoa(o.lines), "size=" + strconv.Itoa(o.lineBytes)}
	// e2e and raw alternate, o.pairs times: on a shared 2-vCPU machine one
	// pair's ratio moves by ±0.1 with the load, so e2e_ratio is the median
	// pair's, and the note gives every pair's. The other e2e figures are
	// the first run's.
	pairs := o.pairs
	if skip["e2e"] || skip["raw"] {
		pairs = 1
	}
	var ratios []float64
	for i := range pairs {
		if !skip["e2e"] {
			fmt.Fprintf(stderr, "e2e (%d of %d): %d lines of %d bytes through deploy-trigger → broker → runner → moto → deploy-trigger …\n", i+1, pairs, o.lines, o.lineBytes)
			st, err := b.trigger(ctx, false, "lines", lineParams, linesChecker(o.lineBytes))
			if err != nil {
				return fmt.Errorf("e2e run: %w", err)
			}
			if st.lines != int64(o.lines) {
				return fmt.Errorf("e2e run: deploy-trigger printed %d lines, want %d", st.lines, o.lines)
			}
			e2eRate = float64(o.lines) / st.elapsed.Seconds()
			if i == 0 {
				add("e2e_lines_per_sec", fmt.Sprintf("%.0f", e2eRate), fmt.Sprintf("deploy-trigger start → exit 0: %.1f MiB in %.2fs, every line checked in order", totalMiB, st.elapsed.Seconds()))
				add("e2e_mib_per_sec", fmt.Sprintf("%.1f", totalMiB/st.elapsed.Seconds()), "")
				add("e2e_overhead_ms", fmt.Sprintf("%.0f", float64(st.firstLine.Microseconds())/1000),
					"deploy-trigger start → first job line on its stdout (publish, SNS loop, dispatcher, RunTask, agent, runner and job start)")
				add("e2e_stream_lines_per_sec", fmt.Sprintf("%.0f", st.stream()), fmt.Sprintf("first line → exit 0 (%.2fs); deploy-trigger used %.2fs of CPU", (st.elapsed-st.firstLine).Seconds(), st.cpu.Seconds()))
				add("e2e_cpu_seconds", fmt.Sprintf("%.2f", st.cpuTotal.Seconds()), st.cpuNote)
				st.runner.addBytes("", int64(o.lines*o.lineBytes), add)
				add("sqs_requests_per_million_lines", fmt.Sprintf("%.0f", float64(st.runner.runnerRequests)*1e6/float64(o.lines)), "")
			}
		}
		if !skip["raw"] {
			fmt.Fprintf(stderr, "raw (%d of %d): bare SendMessageBatch loop with the same bytes …\n", i+1, pairs)
			elapsed, requests, err := b.raw(ctx)
			if err != nil {
				return fmt.Errorf("raw run: %w", err)
			}
			rawRate = float64(o.lines) / elapsed.Seconds()
			if i == 0 {
				firstRaw = rawRate
				add("raw_batch_lines_per_sec", fmt.Sprintf("%.0f", rawRate), fmt.Sprintf("%d full 1 MiB uncompressed requests in %.2fs, no receiver, the broker's moto", requests, elapsed.Seconds()))
			}
		}
		if e2eRate > 0 && rawRate > 0 {
			ratios = append(ratios, e2eRate/rawRate)
		}
	}
	if len(ratios) > 0 {
		add("e2e_ratio", fmt.Sprintf("%.2f", median(ratios)), ratiosNote(ratios))
	}
	if !skip["receiver"] {
		fmt.Fprintf(stderr, "receiver: %d lines through runner → moto → the bench's own receiver …\n", o.lines)
		st, err := b.e2e(ctx, []string{"lines", strconv.Itoa(o.lines), strconv.Itoa(o.lineBytes)}, nil)
		if err != nil {
			return fmt.Errorf("receiver run: %w", err)
		}
		if st.lines != int64(o.lines) {
			return fmt.Errorf("receiver run: the receiver got %d lines, want %d", st.lines, o.lines)
		}
		receiverRate = float64(o.lines) / st.elapsed.Seconds()
		add("receiver_lines_per_sec", fmt.Sprintf("%.0f", receiverRate),
			fmt.Sprintf("runner started directly, bench's minimal receiver instead of deploy-trigger: %.2fs, %d receive calls", st.elapsed.Seconds(), st.receives))
		if firstRaw > 0 {
			add("receiver_ratio", fmt.Sprintf("%.2f", receiverRate/firstRaw), "receiver ÷ raw (the first pair's; the old e2e_ratio)")
		}
	}
	if !skip["deploylog"] && o.deployLines > 0 {
		fmt.Fprintf(stderr, "deploylog: %d lines of realistic deploy output through deploy-trigger (--color) …\n", o.deployLines)
		var line []byte
		var n int
		st, err := b.trigger(ctx, true, "deploylog", []string{"lines=" + strconv.Itoa(o.deployLines)}, func(p []byte, _ time.Time) error {
			line = deploylog.Line(line[:0], n)
			if !bytes.Equal(p, line) {
				return fmt.Errorf("deploy-log line %d differs: %.60q", n, p)
			}
			n++
			return nil
		})
		if err != nil {
			return fmt.Errorf("deploylog run: %w", err)
		}
		if n != o.deployLines {
			return fmt.Errorf("deploylog run: deploy-trigger printed %d lines, want %d", n, o.deployLines)
		}
		add("deploylog_lines_per_sec", fmt.Sprintf("%.0f", float64(n)/st.elapsed.Seconds()),
			fmt.Sprintf("%.1f MiB of realistic lines in %.2fs (%.2fs to the first), every line checked byte for byte", float64(st.bytes)/(1<<20), st.elapsed.Seconds(), st.firstLine.Seconds()))
		add("deploylog_stream_lines_per_sec", fmt.Sprintf("%.0f", st.stream()), "first line → exit 0")
		st.runner.addBytes("deploylog_", st.bytes, add)
	}
	if !skip["latency"] {
		fmt.Fprintf(stderr, "latency: %d lines at %d/s through deploy-trigger …\n", o.latencyLines, o.latencyRate)
		// Lines the job wrote before deploy-trigger printed its first line
		// waited for the run to start being read (the fixed overhead of
		// e2e_overhead_ms, mostly deploy-trigger's queue lookup): they are
		// counted apart, the percentiles are over the lines written while
		// deploy-trigger was streaming.
		var written, printed []time.Time
		st, err := b.trigger(ctx, false, "paced", []string{"lines=" + strconv.Itoa(o.latencyLines), "rate=" + strconv.Itoa(o.latencyRate)}, func(p []byte, at time.Time) error {
			f := strings.Fields(string(p))
			if len(f) != 4 || f[0] != "lat" || f[3] != strconv.Itoa(len(written)) {
				return fmt.Errorf("latency line %d is %q", len(written), p)
			}
			ns, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return fmt.Errorf("latency line %d: %w", len(written), err)
			}
			written, printed = append(written, time.Unix(0, ns)), append(printed, at)
			return nil
		})
		if err != nil {
			return fmt.Errorf("latency run: %w", err)
		}
		if len(written) != o.latencyLines || len(written) == 0 {
			return fmt.Errorf("latency run: %d of %d lines arrived", len(written), o.latencyLines)
		}
		var lat []time.Duration
		backlog, backlogMax := 0, time.Duration(0)
		for i := range written {
			d := printed[i].Sub(written[i])
			if written[i].Before(printed[0]) {
				backlog++
				backlogMax = max(backlogMax, d)
				continue
			}
			lat = append(lat, d)
		}
		if len(lat) == 0 {
			return fmt.Errorf("latency run: all %d lines were written before deploy-trigger printed the first; raise -latency-lines", len(written))
		}
		slices.Sort(lat)
		pct := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
		}
		ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
		add("latency_p50_ms", fmt.Sprintf("%.1f", pct(0.50)), fmt.Sprintf("job write → deploy-trigger's stdout, the %d lines written after its first line", len(lat)))
		add("latency_p99_ms", fmt.Sprintf("%.1f", pct(0.99)), "goal ≤ 50")
		add("latency_max_ms", fmt.Sprintf("%.1f", pct(1)), fmt.Sprintf("%d requests for %d lines", st.runner.runnerRequests, o.latencyLines))
		add("latency_backlog_lines", strconv.Itoa(backlog), "lines written before deploy-trigger printed its first: waited for the start, up to "+ms(backlogMax)+" ms")
	}
	if !skip["start"] {
		if o.startRuns < 1 || o.startRuns > 20 || o.startDelay < 0 {
			return fmt.Errorf("-start-runs must be 1 to 20 (the warm scenario's job has 20 warm runners) and -start-delay not negative")
		}
		if err := b.start(ctx, add); err != nil {
			return fmt.Errorf("start run: %w", err)
		}
	}
	if !skip["rss"] {
		fmt.Fprintf(stderr, "rss: job writes %d MiB (%s sink) …\n", o.rssBytes>>20, o.rssSink)
		kib, note, err := b.rss(ctx)
		if err != nil {
			return fmt.Errorf("rss run: %w", err)
		}
		add("runner_peak_rss_mib", fmt.Sprintf("%.1f", float64(kib)/1024), note)
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tnote")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.name, r.value, r.note)
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	for _, r := range res {
		fmt.Fprintf(stdout, "%s: %s\n", r.name, r.value)
	}
	return nil
}

// median is the middle value of xs (of an even count the upper of the two
// middle ones, as percentile takes p50).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)/2)]
}

// ratiosNote is e2e_ratio's note: every pair's ratio, in the order run.
func ratiosNote(ratios []float64) string {
	each := make([]string, len(ratios))
	for i, r := range ratios {
		each[i] = fmt.Sprintf("%.2f", r)
	}
	if len(ratios) == 1 {
		return "e2e ÷ raw; goal ≥ 0.8"
	}
	return fmt.Sprintf("e2e ÷ raw, median of %d alternating pairs (%s); goal ≥ 0.8", len(ratios), strings.Join(each, ", "))
}
