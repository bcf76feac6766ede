package localbroker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

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

// logShipper is an io.Writer that sends each complete line as a log event,
// in order, synchronously (a runner that writes faster waits, as a
// container's stdout does when its log driver is slow).
type logShipper struct {
	c      *cloudwatchlogs.Client
	group  string
	stream string
	log    *slog.Logger

	mu      sync.Mutex
	created bool
	broken  bool
}

// shipWriter is one of the runner's streams: its own partial line, so that
// stdout and stderr lines never mix (as Docker keeps the two apart).
type shipWriter struct {
	s       *logShipper
	pending []byte
}

func newLogShipper(c *cloudwatchlogs.Client, group, job, taskARN string, log *slog.Logger) *logShipper {
	return &logShipper{c: c, group: group, stream: protocol.RunLogStream(job, config.ContainerName, taskARN), log: log}
}

func (w *shipWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.pending = append(w.pending, p...)
	i := bytes.LastIndexByte(w.pending, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := strings.Split(string(w.pending[:i]), "\n")
	w.pending = append(w.pending[:0], w.pending[i+1:]...)
	w.s.send(lines)
	return len(p), nil
}

// Close sends a last line without a newline.
func (w *shipWriter) Close() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if len(w.pending) > 0 {
		w.s.send([]string{string(w.pending)})
		w.pending = nil
	}
	return nil
}

func (s *logShipper) send(lines []string) {
	if s.broken {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !s.created {
		_, err := s.c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(s.group), LogStreamName: aws.String(s.stream)})
		var exists *cwltypes.ResourceAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			s.fail(err)
			return
		}
		s.created = true
	}
	now := time.Now().UnixMilli()
	for len(lines) > 0 {
		n := min(len(lines), 1000)
		events := make([]cwltypes.InputLogEvent, 0, n)
		for _, l := range lines[:n] {
			if l == "" {
				l = " " // CloudWatch Logs refuses empty events
			}
			events = append(events, cwltypes.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(now)})
		}
		if _, err := s.c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(s.group),
			LogStreamName: aws.String(s.stream), LogEvents: events}); err != nil {
			s.fail(err)
			return
		}
		lines = lines[n:]
	}
}

func (s *logShipper) fail(err error) {
	s.broken = true
	s.log.Warn("agent: shipping the task's log to CloudWatch Logs failed; the rest of it goes to the task log file only", "stream", s.stream, "error", err.Error())
}
