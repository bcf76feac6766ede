package runner

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// BatchSender is the one SQS call the runner makes; *sqs.Client satisfies it.
type BatchSender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// DedupID is the FIFO deduplication id of a runner message whose first
// record has sequence number first: the run's secret prefix (newDedupPrefix)
// and the number. A job that sends to the run queue with ids of its own
// choosing cannot make SQS drop a record of the runner's as a duplicate.
func DedupID(prefix string, first uint64) string { return prefix + "-" + strconv.FormatUint(first, 10) }

// newDedupPrefix is a run's deduplication id prefix: 128 random bits, kept
// by the runner to itself (never logged, never in the job's environment).
func newDedupPrefix() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b) // never fails on Linux and macOS (crypto/rand)
	return "r" + hex.EncodeToString(b)
}

// sender delivers requests in order, one at a time. On errors (after the
// SDK's own retries) and on partial batch failures it retries from the first
// undelivered entry on, with exponential backoff and full jitter; the
// deduplication ids make a resent message harmless. When one request has
// kept failing for giveUp, the sender switches to local-only mode: it drops
// this and every later request (the trigger could not print anything past
// the gap anyway) so that the job is never held up by a dead queue.
type sender struct {
	client      BatchSender
	queueURL    string
	groupID     string
	dedupPrefix string
	giveUp      time.Duration
	callTimeout time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	log         *slog.Logger

	work  <-chan *request
	ready chan<- struct{}

	// Results, read after run returns.
	localOnly bool
	lastErr   error
	finalSent bool
	requests  int // successful SendMessageBatch calls
	messages  int
	bodyBytes int64
	rawBytes  int64 // bodyBytes before compression
	gzMsgs    int   // messages sent compressed
	retries   int
	dropped   int // requests not delivered (local-only)
}

func (s *sender) run(ctx context.Context) {
	for {
		s.ready <- struct{}{}
		req, ok := <-s.work
		if !ok {
			return
		}
		if s.localOnly || s.client == nil {
			s.dropped++
			continue
		}
		if err := s.deliver(ctx, req); err != nil {
			s.localOnly = true
			s.lastErr = err
			s.dropped++
			s.log.Error("feedback queue unreachable: switching to local-only mode; the job keeps running and its output stays in this log, but the trigger will not see the rest of the run",
				"queue", s.queueURL, "gave_up_after", s.giveUp.String(), "err", err.Error())
			continue
		}
		if req.final {
			s.finalSent = true
		}
	}
}

// deliver sends req until every entry is accepted or giveUp passes.
func (s *sender) deliver(ctx context.Context, req *request) error {
	entries := make([]sqstypes.SendMessageBatchRequestEntry, len(req.msgs))
	for i, m := range req.msgs {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{
			Id:                     aws.String(strconv.Itoa(i)),
			MessageBody:            aws.String(m.body),
			MessageGroupId:         aws.String(s.groupID),
			MessageDeduplicationId: aws.String(DedupID(s.dedupPrefix, m.first)),
		}
	}
	var failingSince time.Time
	backoff := s.backoffMin
	from := 0
	for {
		err := s.sendOnce(ctx, entries, &from)
		if err == nil {
			s.requests++
			s.messages += len(req.msgs)
			s.bodyBytes += int64(req.bytes)
			for _, m := range req.msgs {
				s.rawBytes += int64(m.raw)
				if m.gz {
					s.gzMsgs++
				}
			}
			return nil
		}
		now := time.Now()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(failingSince) >= s.giveUp {
			return err
		}
		s.retries++
		wait := backoff/2 + rand.N(backoff/2+1)
		s.log.Warn("sending output to the feedback queue failed; retrying", "err", err.Error(), "retry_in", wait.String(),
			"undelivered_from_seq", req.msgs[from].first)
		if left := s.giveUp - now.Sub(failingSince); wait > left {
			wait = left
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		backoff = min(2*backoff, s.backoffMax)
	}
}

// sendOnce sends entries[*from:]; on a partial failure it advances *from to
// the first failed entry and returns an error.
func (s *sender) sendOnce(ctx context.Context, entries []sqstypes.SendMessageBatchRequestEntry, from *int) error {
	cctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	batch := entries[*from:]
	out, err := s.client.SendMessageBatch(cctx, &sqs.SendMessageBatchInput{QueueUrl: &s.queueURL, Entries: batch})
	if err != nil {
		return fmt.Errorf("sending %d messages: %w", len(batch), err)
	}
	if len(out.Failed) == 0 {
		return nil
	}
	first := len(batch)
	var code, msg string
	for _, f := range out.Failed {
		i, convErr := strconv.Atoi(aws.ToString(f.Id))
		if convErr != nil {
			i = 0 // unknown entry: resend everything
		}
		i -= *from
		if i < 0 || i >= len(batch) {
			i = 0
		}
		if i < first {
			first, code, msg = i, aws.ToString(f.Code), aws.ToString(f.Message)
		}
	}
	if first >= len(batch) {
		first = 0
	}
	*from += first
	return errors.New("batch entry " + strconv.Itoa(*from) + " failed: " + code + ": " + msg)
}
