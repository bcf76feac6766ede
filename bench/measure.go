package main

// The measurements: a run through deploy-trigger and the local broker
// (e2e), the bench's own receiver, the raw SendMessageBatch loop and the
// runner's peak RSS.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/bench/counting"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

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
	// startOnly: trigger measures the start only, not the runner's counts
	// (a warm runner's task log is named after its slot, not the run).
	startOnly bool
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
	// The job is this binary, which `go run` leaves in a directory only its
	// owner may enter: a runner started as root would run it as the image's
	// job user and fail to start it, so the job keeps the runner's uid.
	cmd.Env = append(cmd.Env, protocol.EnvRunID+"="+runID, protocol.EnvQueueURL+"="+url, protocol.EnvJob+"=bench",
		runner.EnvCompress+"="+b.o.compress, runner.EnvJobUID+"="+runner.JobUIDSame)
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
			RunLogBytes  int64 `json:"run_log_bytes"`
			Delivered    bool  `json:"delivered"`
		}
		last := out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:]
		if err := json.Unmarshal(last, &r); err != nil {
			return 0, "", fmt.Errorf("reading the counting runner's report %q: %w", last, err)
		}
		if !wantBytes(r.JobBytes) || !r.Delivered {
			return 0, "", fmt.Errorf("the counting runner saw %d job bytes (delivered %v)", r.JobBytes, r.Delivered)
		}
		if r.RunLogBytes < r.JobBytes {
			return 0, "", fmt.Errorf("the counting runner wrote a run log of %d bytes for %d job bytes", r.RunLogBytes, r.JobBytes)
		}
		return r.PeakRSSKiB, fmt.Sprintf("VmHWM; %d MiB of %s in %.1fs via counting sink (rtt %s), %d requests, %d MiB sent, %d messages compressed; run log on: %d MiB",
			r.JobBytes>>20, b.o.rssJob, time.Since(start).Seconds(), b.o.rssRTT, r.Requests, r.BodyBytes>>20, r.Compressed, r.RunLogBytes>>20), nil
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
