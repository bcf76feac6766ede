package localbroker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Run logs in local mode (issue 17): the agent does what the awslogs driver
// does in Fargate. Every line a runner writes (its stdout: the run log, as
// DEPLOY_BROKER_LOG_FORMAT=records makes it; its stderr: its diagnostics)
// becomes an event of the stream "<job>/runner/<task id>" of the run log
// group in the emulator's CloudWatch Logs, so deploy-trigger logs and
// attach read local runs with the same code as runs in AWS.

// RunLogGroupName is the local run log group of a broker (the stack's name
// when broker.run_log_key is set; CloudFormation names it otherwise).
func RunLogGroupName(broker string) string { return "/deploy-broker/" + broker + "/runs" }

func createRunLogGroup(ctx context.Context, c *cloudwatchlogs.Client, name string) error {
	_, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(name)})
	var exists *cwltypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return err
	}
	return nil
}

// logShipper sends the runner's lines, in order, as events of its run log
// stream. Writes (whole lines, from the two lineWriters of the runner's
// pipes) queue; a goroutine sends what has queued in batches, as the awslogs
// driver does. A runner that writes faster than CloudWatch Logs takes waits
// once maxShipQueue bytes are queued, as a container's stdout does when its
// log driver is slow (blocking mode). Sending each piece as it came, one
// PutLogEvents a write, held the runner up to the emulator's pace: the
// end-to-end bench fell to a tenth of the raw SQS rate.
type logShipper struct {
	c      *cloudwatchlogs.Client
	group  string
	stream string
	log    *slog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []string
	queued int // bytes in queue
	closed bool
	done   chan struct{}

	created bool // the goroutine's
	broken  bool
}

// maxShipQueue is how much of a runner's output may wait to be shipped.
const maxShipQueue = 8 << 20

// PutLogEvents limits: events per call, bytes per call and per event (each
// event counts its message and 26 bytes).
const (
	maxBatchEvents = 10000
	maxBatchBytes  = 1 << 20
	eventOverhead  = 26
	maxEventBytes  = 256<<10 - eventOverhead
)

func newLogShipper(c *cloudwatchlogs.Client, group, job, taskARN string, log *slog.Logger) *logShipper {
	s := &logShipper{c: c, group: group, stream: protocol.RunLogStream(job, config.ContainerName, taskARN), log: log, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// Write queues p's lines (p holds whole lines; a last piece without a
// newline is a line too).
func (s *logShipper) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// One string for the whole write; its lines are substrings of it.
	text := strings.TrimSuffix(string(p), "\n")
	lines := make([]string, 0, strings.Count(text, "\n")+1)
	for l := range strings.SplitSeq(text, "\n") {
		lines = appendEvents(lines, l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, io.ErrClosedPipe
	}
	for s.queued > maxShipQueue && !s.closed {
		s.cond.Wait()
	}
	s.queue = append(s.queue, lines...)
	s.queued += len(p)
	s.cond.Broadcast()
	return len(p), nil
}

// Close ships what is queued and returns when it is sent.
func (s *logShipper) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
	return nil
}

func (s *logShipper) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		lines := s.queue
		s.queue, s.queued = nil, 0
		s.cond.Broadcast()
		s.mu.Unlock()
		s.send(lines)
	}
}

// appendEvents appends line l as events: l itself, or, when it is longer
// than CloudWatch Logs' largest event, pieces that fit, cut at UTF-8
// boundaries.
func appendEvents(out []string, l string) []string {
	for len(l) > maxEventBytes {
		cut := maxEventBytes
		for cut > 0 && !utf8.RuneStart(l[cut]) {
			cut--
		}
		out = append(out, l[:cut])
		l = l[cut:]
	}
	return append(out, l)
}

// callTimeout bounds each CloudWatch Logs call of the shipper.
const callTimeout = 30 * time.Second

func (s *logShipper) send(lines []string) {
	if s.broken {
		return
	}
	if !s.created {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := s.c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(s.group), LogStreamName: aws.String(s.stream)})
		cancel()
		var exists *cwltypes.ResourceAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			s.fail(err)
			return
		}
		s.created = true
	}
	now := time.Now().UnixMilli()
	for len(lines) > 0 {
		events := make([]cwltypes.InputLogEvent, 0, min(len(lines), maxBatchEvents))
		size := 0
		for len(lines) > 0 && len(events) < maxBatchEvents {
			l := lines[0]
			if l == "" {
				l = " " // CloudWatch Logs refuses empty events
			}
			if len(events) > 0 && size+len(l)+eventOverhead > maxBatchBytes {
				break
			}
			size += len(l) + eventOverhead
			events = append(events, cwltypes.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(now)})
			lines = lines[1:]
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		_, err := s.c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(s.group),
			LogStreamName: aws.String(s.stream), LogEvents: events})
		cancel()
		if err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *logShipper) fail(err error) {
	s.broken = true
	s.log.Warn("agent: shipping the task's log to CloudWatch Logs failed; the rest of it goes to the task log file only", "stream", s.stream, "error", err.Error())
}
