package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

// The bench binary doubles as the job and as an in-process runner with a
// counting sink; these environment variables select the role.
const (
	EnvJob    = "DEPLOY_BROKER_BENCH_JOB"    // lines N SIZE | paced N RATE | bytes TOTAL SIZE | deploylog N | deploylog-bytes TOTAL
	EnvRunner = "DEPLOY_BROKER_BENCH_RUNNER" // run runner.Run with a counting sink; args are the job argv
)

// Job writes the benchmark's job output. It returns the exit code.
func Job(mode string, args []string) int {
	num := func(i int) int64 {
		n, err := strconv.ParseInt(args[i], 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench job:", err)
			os.Exit(2)
		}
		return n
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	defer w.Flush()
	switch mode {
	case "lines", "bytes": // N lines of SIZE bytes (newline included), or TOTAL bytes of such lines
		n, size := num(0), num(1)
		if mode == "bytes" {
			n = n / size
		}
		line := make([]byte, size)
		for i := range line {
			line[i] = 'a' + byte(i%26)
		}
		line[size-1] = '\n'
		for i := int64(0); i < n; i++ {
			copy(line, fmt.Sprintf("%09d ", i))
			w.Write(line)
		}
	case "deploylog", "deploylog-bytes": // N lines of DeployLogLine, or lines up to TOTAL bytes
		n := num(0)
		var line []byte
		var written int64
		for i := 0; ; i++ {
			if mode == "deploylog" && int64(i) >= n {
				break
			}
			line = append(DeployLogLine(line[:0], i), '\n')
			if mode == "deploylog-bytes" && written+int64(len(line)) > n {
				break
			}
			w.Write(line)
			written += int64(len(line))
		}
	case "paced": // N lines at RATE per second, each stamped with its write time
		n, rate := num(0), num(1)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := int64(0); i < n; i++ {
			<-tick.C
			fmt.Fprintf(os.Stdout, "lat %d line %d\n", time.Now().UnixNano(), i)
		}
	default:
		fmt.Fprintln(os.Stderr, "bench job: unknown mode", mode)
		return 2
	}
	return 0
}

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

// CountingRunner runs the runner in process with a counting sink (round
// trip rtt) and prints its peak RSS and counts as JSON on stdout.
func CountingRunner(argv []string, rtt time.Duration) int {
	sink := &countingSink{rtt: rtt}
	cfg := runner.Config{Args: argv, Env: os.Environ(), RunID: "01JDBENCH000000000000000000", QueueURL: "counting://",
		Heartbeat: 10 * time.Second, Grace: time.Second, SendTimeout: time.Minute, Compress: os.Getenv(runner.EnvCompress)}
	res := runner.Run(context.Background(), cfg, sink)
	fmt.Printf(`{"peak_rss_kib":%d,"requests":%d,"body_bytes":%d,"raw_body_bytes":%d,"compressed_messages":%d,"job_bytes":%d,"lines":%d,"delivered":%v,"reason":%q}`+"\n",
		peakRSSKiB(os.Getpid()), sink.requests.Load(), sink.bytes.Load(), res.RawBodyBytes, res.Compressed, res.Exit.Bytes, res.Exit.Lines, res.Delivered, res.Exit.Reason)
	if res.Exit.Reason != protocol.ReasonCompleted {
		return 1
	}
	return 0
}

// peakRSSKiB reads VmHWM (peak resident set) of a process.
func peakRSSKiB(pid int) int64 {
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
