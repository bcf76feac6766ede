package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/bench/counting"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
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
	fs.StringVar(&o.skip, "skip", "", "comma-separated parts to skip: e2e,raw,receiver,deploylog,latency,rss")
	if err := fs.Parse(args); err != nil {
		return 2
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
	totalMiB := float64(o.lines*o.lineBytes) / (1 << 20)
	lineParams := []string{"lines=" + strconv.Itoa(o.lines), "size=" + strconv.Itoa(o.lineBytes)}
	if !skip["e2e"] {
		fmt.Fprintf(stderr, "e2e: %d lines of %d bytes through deploy-trigger → broker → runner → moto → deploy-trigger …\n", o.lines, o.lineBytes)
		st, err := b.trigger(ctx, false, "lines", lineParams, linesChecker(o.lineBytes))
		if err != nil {
			return fmt.Errorf("e2e run: %w", err)
		}
		if st.lines != int64(o.lines) {
			return fmt.Errorf("e2e run: deploy-trigger printed %d lines, want %d", st.lines, o.lines)
		}
		e2eRate = float64(o.lines) / st.elapsed.Seconds()
		add("e2e_lines_per_sec", fmt.Sprintf("%.0f", e2eRate), fmt.Sprintf("deploy-trigger start → exit 0: %.1f MiB in %.2fs, every line checked in order", totalMiB, st.elapsed.Seconds()))
		add("e2e_mib_per_sec", fmt.Sprintf("%.1f", totalMiB/st.elapsed.Seconds()), "")
		add("e2e_overhead_ms", fmt.Sprintf("%.0f", float64(st.firstLine.Microseconds())/1000),
			"deploy-trigger start → first job line on its stdout (publish, SNS loop, dispatcher, RunTask, agent, runner and job start)")
		add("e2e_stream_lines_per_sec", fmt.Sprintf("%.0f", st.stream()), fmt.Sprintf("first line → exit 0 (%.2fs); deploy-trigger used %.2fs of CPU", (st.elapsed-st.firstLine).Seconds(), st.cpu.Seconds()))
		st.runner.addBytes("", int64(o.lines*o.lineBytes), add)
		add("sqs_requests_per_million_lines", fmt.Sprintf("%.0f", float64(st.runner.runnerRequests)*1e6/float64(o.lines)), "")
	}
	if !skip["raw"] {
		fmt.Fprintln(stderr, "raw: bare SendMessageBatch loop with the same bytes …")
		elapsed, requests, err := b.raw(ctx)
		if err != nil {
			return fmt.Errorf("raw run: %w", err)
		}
		rawRate = float64(o.lines) / elapsed.Seconds()
		add("raw_batch_lines_per_sec", fmt.Sprintf("%.0f", rawRate), fmt.Sprintf("%d full 1 MiB uncompressed requests in %.2fs, no receiver, the broker's moto", requests, elapsed.Seconds()))
	}
	if e2eRate > 0 && rawRate > 0 {
		add("e2e_ratio", fmt.Sprintf("%.2f", e2eRate/rawRate), "e2e ÷ raw; goal ≥ 0.8")
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
		if rawRate > 0 {
			add("receiver_ratio", fmt.Sprintf("%.2f", receiverRate/rawRate), "receiver ÷ raw (the old e2e_ratio)")
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

type bencher struct {
	o        options
	self     string
	tmp      string
	broker   *localbroker.Broker
	taskLogs string // the local broker's task logs (<run id>.log)
	srv      *moto.Server
	client   *sqs.Client
	stderr   io.Writer
	n        int
	// onStart, when set, learns the runner's pid.
	onStart func(pid int)
}

func (b *bencher) queue(ctx context.Context) (string, string, error) {
	b.n++
	runID := fmt.Sprintf("01JDBENCH%017d", b.n)
	out, err := b.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName("bench", runID)),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		return "", "", err
	}
	return *out.QueueUrl, runID, nil
}

type e2eStats struct {
	elapsed          time.Duration
	lines            int64
	receives         int
	runnerRequests   int64
	runnerBodyBytes  int64
	runnerRawBytes   int64 // body bytes before compression
	runnerMessages   int64
	runnerCompressed int64
}

// addBytes adds the per-request figures of a run whose job wrote jobBytes.
func (st e2eStats) addBytes(prefix string, jobBytes int64, add func(name, value, note string)) {
	req := float64(max(st.runnerRequests, 1))
	add(prefix+"bytes_per_request", fmt.Sprintf("%.0f", float64(jobBytes)/req),
		fmt.Sprintf("job output per SendMessageBatch (%d requests); goal ≥ 700 KiB", st.runnerRequests))
	add(prefix+"wire_bytes_per_request", fmt.Sprintf("%.0f", float64(st.runnerBodyBytes)/req),
		fmt.Sprintf("message bodies as sent per request; %d of %d messages compressed", st.runnerCompressed, st.runnerMessages))
	add(prefix+"compression", fmt.Sprintf("%.1f", float64(jobBytes)/float64(max(st.runnerBodyBytes, 1))),
		fmt.Sprintf("job bytes per body byte sent (uncompressed bodies ÷ sent: %.1f)", float64(st.runnerRawBytes)/float64(max(st.runnerBodyBytes, 1))))
}

// e2e runs the runner binary with the bench job in the given mode and
// receives until the exit record. onLine sees every complete line.
func (b *bencher) e2e(ctx context.Context, job []string, onLine func([]byte)) (e2eStats, error) {
	var st e2eStats
	url, runID, err := b.queue(ctx)
	if err != nil {
		return st, err
	}
	cmd := exec.CommandContext(ctx, b.o.runnerBin, b.jobArgv(job)...)
	cmd.Env = append(os.Environ(), b.srv.Env(moto.Region)...)
	cmd.Env = append(cmd.Env, protocol.EnvRunID+"="+runID, protocol.EnvQueueURL+"="+url, protocol.EnvJob+"=bench",
		runner.EnvCompress+"="+b.o.compress)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs // the tee copy goes nowhere; the runner's JSON log is kept
	recvDone := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return st, err
	}
	if b.onStart != nil {
		b.onStart(cmd.Process.Pid)
	}
	go func() { recvDone <- receive(ctx, b.client, url, &st, onLine) }()
	rerr := <-recvDone
	st.elapsed = time.Since(start)
	werr := cmd.Wait()
	if rerr != nil {
		return st, fmt.Errorf("receiving: %w (runner log: %s)", rerr, tail(logs.String()))
	}
	if werr != nil {
		return st, fmt.Errorf("the runner failed: %w (log: %s)", werr, tail(logs.String()))
	}
	sc := bufio.NewScanner(&logs)
	for sc.Scan() {
		if counts, ok := parseRunFinished(sc.Bytes()); ok {
			st.runnerRequests, st.runnerBodyBytes, st.runnerRawBytes = counts.runnerRequests, counts.runnerBodyBytes, counts.runnerRawBytes
			st.runnerMessages, st.runnerCompressed = counts.runnerMessages, counts.runnerCompressed
		}
	}
	return st, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// receive is a minimal trigger: receive, delete, reorder by sequence
// number, reassemble pieces and write lines (to io.Discard), until the exit
// record. It checks that output lines of the "lines" job arrive in order.
func receive(ctx context.Context, client *sqs.Client, url string, st *e2eStats, onLine func([]byte)) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	pending := map[uint64]protocol.Record{}
	next := uint64(1)
	var partial []byte
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	for {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 5})
		if err != nil {
			return err
		}
		st.receives++
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			recs, err := protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Seq >= next {
					pending[r.Seq] = r
				}
			}
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(del) > 0 {
			if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: del}); err != nil {
				return err
			}
		}
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			switch {
			case r.Output != nil:
				for _, l := range r.Output.Lines {
					p, err := l.Bytes()
					if err != nil {
						return err
					}
					w.Write(p)
					if l.Cont {
						partial = append(partial, p...)
						continue
					}
					w.WriteByte('\n')
					line := p
					if len(partial) > 0 {
						line = append(partial, p...)
						partial = partial[:0]
					}
					if onLine != nil {
						onLine(line)
					} else if want := fmt.Sprintf("%09d ", st.lines); !bytes.HasPrefix(line, []byte(want)) {
						return fmt.Errorf("line %d out of order: %.20q", st.lines, line)
					}
					st.lines++
				}
			case r.Exit != nil:
				w.Flush()
				if r.Exit.Reason != protocol.ReasonCompleted || r.Exit.Code != 0 {
					return fmt.Errorf("the job did not complete: %+v", *r.Exit)
				}
				return nil
			}
		}
	}
}

// raw sends the same job output, packed into full 1 MiB messages by the
// same encoder, with a bare SendMessageBatch loop: the ceiling the runner is
// compared with.
func (b *bencher) raw(ctx context.Context) (time.Duration, int, error) {
	url, runID, err := b.queue(ctx)
	if err != nil {
		return 0, 0, err
	}
	var bodies []string
	var mb protocol.MessageBuilder
	mb.Reset()
	line := make([]byte, b.o.lineBytes-1)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	now := time.Now()
	seq := uint64(1)
	mb.BeginOutput(protocol.SourceRunner, seq, now)
	for i := 0; i < b.o.lines; i++ {
		copy(line, fmt.Sprintf("%09d ", i))
		m := mb.Mark()
		mb.AppendLine(protocol.Stdout, now, line, false)
		if mb.Len() > protocol.MaxMessageBytes {
			mb.Rollback(m)
			bodies = append(bodies, string(mb.Bytes()))
			mb.Reset()
			seq++
			mb.BeginOutput(protocol.SourceRunner, seq, now)
			mb.AppendLine(protocol.Stdout, now, line, false)
		}
	}
	bodies = append(bodies, string(mb.Bytes()))
	start := time.Now()
	for i, body := range bodies {
		_, err := b.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: []sqstypes.SendMessageBatchRequestEntry{{
			Id: aws.String("0"), MessageBody: aws.String(body), MessageGroupId: aws.String(runID),
			MessageDeduplicationId: aws.String("raw-" + strconv.Itoa(i)),
		}}})
		if err != nil {
			return 0, 0, err
		}
	}
	elapsed := time.Since(start)
	_, _ = b.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &url})
	return elapsed, len(bodies), nil
}

// rss measures the runner's peak resident set while the job writes
// o.rssBytes.
func (b *bencher) rss(ctx context.Context) (int64, string, error) {
	job := []string{"bytes", strconv.FormatInt(b.o.rssBytes, 10), strconv.Itoa(b.o.lineBytes)}
	wantBytes := func(n int64) bool { return n == b.o.rssBytes/int64(b.o.lineBytes)*int64(b.o.lineBytes) }
	switch b.o.rssJob {
	case "lines":
	case "deploylog":
		job = []string{"deploylog-bytes", strconv.FormatInt(b.o.rssBytes, 10)}
		wantBytes = func(n int64) bool { return n <= b.o.rssBytes && n > b.o.rssBytes-1024 }
	default:
		return 0, "", fmt.Errorf("-rss-job must be lines or deploylog, not %q", b.o.rssJob)
	}
	switch b.o.rssSink {
	case "counting":
		cmd := exec.CommandContext(ctx, b.o.countingBin, append([]string{b.o.rssRTT.String()}, b.jobArgv(job)...)...)
		cmd.Env = append(os.Environ(), runner.EnvCompress+"="+b.o.compress)
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			return 0, "", fmt.Errorf("%w: %s", err, out)
		}
		var r struct {
			PeakRSSKiB   int64 `json:"peak_rss_kib"`
			Requests     int64 `json:"requests"`
			BodyBytes    int64 `json:"body_bytes"`
			RawBodyBytes int64 `json:"raw_body_bytes"`
			Compressed   int64 `json:"compressed_messages"`
			JobBytes     int64 `json:"job_bytes"`
			Delivered    bool  `json:"delivered"`
		}
		last := out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:]
		if err := json.Unmarshal(last, &r); err != nil {
			return 0, "", fmt.Errorf("reading the counting runner's report %q: %w", last, err)
		}
		if !wantBytes(r.JobBytes) || !r.Delivered {
			return 0, "", fmt.Errorf("the counting runner saw %d job bytes (delivered %v)", r.JobBytes, r.Delivered)
		}
		return r.PeakRSSKiB, fmt.Sprintf("VmHWM; %d MiB of %s in %.1fs via counting sink (rtt %s), %d requests, %d MiB sent, %d messages compressed",
			r.JobBytes>>20, b.o.rssJob, time.Since(start).Seconds(), b.o.rssRTT, r.Requests, r.BodyBytes>>20, r.Compressed), nil
	case "moto":
		var peak int64
		stop, polled := make(chan struct{}), make(chan struct{})
		// Poll the runner process's VmHWM while it runs.
		pids := make(chan int, 1)
		go func() {
			defer close(polled)
			var pid int
			select {
			case pid = <-pids:
			case <-stop:
				return
			}
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if k := counting.PeakRSSKiB(pid); k > peak {
						peak = k
					}
				}
			}
		}()
		b.onStart = func(pid int) { pids <- pid }
		st, err := b.e2e(ctx, job, func([]byte) {})
		b.onStart = nil
		close(stop)
		<-polled
		if err != nil {
			return 0, "", err
		}
		return peak, fmt.Sprintf("VmHWM polled every 100ms; %d MiB through moto in %.1fs", st.lines*int64(b.o.lineBytes)>>20, st.elapsed.Seconds()), nil
	}
	return 0, "", fmt.Errorf("-rss-sink must be counting or moto, not %q", b.o.rssSink)
}
