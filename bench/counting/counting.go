// Package counting is the runner with an in-process counting sink, for the
// benchmark's peak-RSS run: bench/counting-runner is a binary of its own
// so that the process measured holds the runner's code and not the
// benchmark's (the local broker, the dispatcher, the AWS SDK's ECS and
// DynamoDB clients would add several MiB of resident memory of their own).
package counting

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

// countingSink accepts every batch after a simulated round trip and counts.
type countingSink struct {
	rtt      time.Duration
	requests atomic.Int64
	bytes    atomic.Int64
}

func (s *countingSink) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	time.Sleep(s.rtt)
	s.requests.Add(1)
	for _, e := range in.Entries {
		s.bytes.Add(int64(len(*e.MessageBody)))
	}
	return &sqs.SendMessageBatchOutput{}, nil
}

// runLogSink takes the run log (the runner's stdout in records format, as
// the stack's task definitions set it) and counts its bytes and lines.
type runLogSink struct{ bytes, lines int64 }

func (w *runLogSink) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	w.lines += int64(bytes.Count(p, []byte("\n")))
	return len(p), nil
}

// Run runs the runner in process with a counting sink (round
// trip rtt), its run log on (into a counting writer), and prints its peak
// RSS and counts as JSON on stdout.
func Run(argv []string, rtt time.Duration) int {
	sink := &countingSink{rtt: rtt}
	runLog := &runLogSink{}
	cfg := runner.Config{Args: argv, Env: os.Environ(), RunID: "01JDBENCH000000000000000000", QueueURL: "counting://",
		Heartbeat: 10 * time.Second, Grace: time.Second, SendTimeout: time.Minute, Compress: os.Getenv(runner.EnvCompress),
		LogFormat: protocol.LogFormatRecords, Stdout: runLog, Stderr: io.Discard}
	res := runner.Run(context.Background(), cfg, sink)
	fmt.Printf(`{"peak_rss_kib":%d,"requests":%d,"body_bytes":%d,"raw_body_bytes":%d,"compressed_messages":%d,"job_bytes":%d,"lines":%d,"run_log_bytes":%d,"run_log_lines":%d,"delivered":%v,"reason":%q}`+"\n",
		PeakRSSKiB(os.Getpid()), sink.requests.Load(), sink.bytes.Load(), res.RawBodyBytes, res.Compressed, res.Exit.Bytes, res.Exit.Lines,
		runLog.bytes, runLog.lines, res.Delivered, res.Exit.Reason)
	if res.Exit.Reason != protocol.ReasonCompleted {
		return 1
	}
	return 0
}

// PeakRSSKiB reads VmHWM (peak resident set) of a process.
func PeakRSSKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	var kib int64 = -1
	for _, line := range splitLines(string(b)) {
		if n, err := fmt.Sscanf(line, "VmHWM: %d kB", &kib); n == 1 && err == nil {
			return kib
		}
	}
	return -1
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
