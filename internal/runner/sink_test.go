package runner

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// memQueue is an in-memory FIFO queue behind the BatchSender interface: it
// enforces SQS's batch limits, deduplicates by MessageDeduplicationId, and
// can stall or fail on demand.
type memQueue struct {
	mu       sync.Mutex
	t        testing.TB
	bodies   []string
	seen     map[string]bool
	calls    int
	gate     chan struct{} // when not nil, each call waits for a token
	delay    time.Duration // per call, like a network round trip
	failCall func(call int, n int) (failFrom int, err error)
	onBody   func(body string) // called with each body accepted
	firstIDs []string          // per call, the deduplication id of its first entry
}

func newMemQueue(t testing.TB) *memQueue { return &memQueue{t: t, seen: map[string]bool{}} }

func (q *memQueue) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if q.gate != nil {
		select {
		case <-q.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	time.Sleep(q.delay)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if len(in.Entries) > 0 {
		q.firstIDs = append(q.firstIDs, aws.ToString(in.Entries[0].MessageDeduplicationId))
	}
	if len(in.Entries) == 0 || len(in.Entries) > MaxBatchEntries {
		q.t.Errorf("batch of %d entries", len(in.Entries))
	}
	total := 0
	for _, e := range in.Entries {
		total += len(aws.ToString(e.MessageBody))
	}
	if total > protocol.MaxMessageBytes {
		q.t.Errorf("batch of %d bytes", total)
	}
	failFrom := len(in.Entries)
	if q.failCall != nil {
		var err error
		failFrom, err = q.failCall(q.calls, len(in.Entries))
		if err != nil {
			return nil, err
		}
	}
	out := &sqs.SendMessageBatchOutput{}
	for i, e := range in.Entries {
		if i >= failFrom {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
			continue
		}
		id := aws.ToString(e.MessageDeduplicationId)
		if aws.ToString(e.MessageGroupId) == "" || id == "" {
			q.t.Errorf("entry without group or deduplication id")
		}
		if !q.seen[id] {
			q.seen[id] = true
			q.bodies = append(q.bodies, aws.ToString(e.MessageBody))
			if q.onBody != nil {
				q.onBody(aws.ToString(e.MessageBody))
			}
		}
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// records decodes the queue in order, checking that sequence numbers run
// 1, 2, 3… exactly in queue order (no reordering, no duplicates, no gaps).
func (q *memQueue) records(t testing.TB) run {
	q.mu.Lock()
	defer q.mu.Unlock()
	var r run
	for _, b := range q.bodies {
		recs, err := protocol.DecodeMessage([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Seq != uint64(len(r.records)+1) {
				t.Fatalf("record seq %d at queue position %d", rec.Seq, len(r.records)+1)
			}
			r.records = append(r.records, rec)
		}
	}
	return r
}

func sinkConfig(t testing.TB, mode string, args ...string) Config {
	argv, env := jobArgs(mode, args...)
	c := testConfig(t, "mem://queue", argv, env)
	c.SendTimeout = 10 * time.Second
	return c
}

func checkLines(t *testing.T, r run, n int) {
	t.Helper()
	_, _, order := r.streams(t)
	if len(order) != n {
		t.Fatalf("got %d lines, want %d", len(order), n)
	}
	for i, l := range order {
		if !strings.HasPrefix(l, "out:line "+leftPad(i)) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
}

func TestBackpressureStallingSink(t *testing.T) {
	const n = 400_000 // about 36 MB: far more than the runner may hold
	q := newMemQueue(t)
	q.gate = make(chan struct{})
	q.delay = 10 * time.Millisecond // an SQS round trip: the queue is the bottleneck
	c := sinkConfig(t, "lines", strconv.Itoa(n))
	c.Log = nil
	done := make(chan Result)
	go func() { done <- Run(context.Background(), c, q) }()

	// While the sink stalls, the job must block: the runner holds a bounded
	// amount and the rest waits in the job.
	time.Sleep(time.Second)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	select {
	case <-done:
		t.Fatal("the run finished while the queue was stalled")
	default:
	}
	if heap := ms.HeapInuse >> 20; heap > 32 {
		t.Fatalf("heap in use %d MiB while stalled", heap)
	}
	t.Logf("heap in use while stalled: %d MiB", ms.HeapInuse>>20)
	close(q.gate) // let everything through
	res := <-done
	if !res.Delivered || res.Exit.Reason != protocol.ReasonCompleted {
		t.Fatalf("result %+v", res)
	}
	checkLines(t, q.records(t), n)
	// How full requests get depends on how fast the job, the readers and
	// the batcher run against the queue's round trip, i.e. on CPU share:
	// logged, not asserted. That a request the sender is not ready for
	// fills to its limits is TestBatcherCompressibleFillsRequests; the
	// figure is BenchmarkBatcherSaturated's (docs/BENCHMARKS.md).
	per := res.RawBodyBytes / int64(res.Requests)
	t.Logf("%d requests, %d body bytes per request (%d compressed), %d compressed messages",
		res.Requests, per, res.BodyBytes/int64(res.Requests), res.Compressed)
}

func TestPartialBatchFailureKeepsOrder(t *testing.T) {
	const n = 20_000
	q := newMemQueue(t)
	// Every third call fails from its second entry on (FIFO fails the rest
	// of the group); every fifth fails outright.
	q.failCall = func(call, entries int) (int, error) {
		switch {
		case call%5 == 0:
			return 0, errors.New("connection reset by peer")
		case call%3 == 0 && entries > 1:
			return 1, nil
		}
		return entries, nil
	}
	c := sinkConfig(t, "lines", strconv.Itoa(n))
	c.MaxRequestBytes = 64 << 10 // many small messages and batches
	c.MaxMessageBytes = 6 << 10
	q.delay = time.Millisecond
	res := Run(context.Background(), c, q)
	if !res.Delivered || res.Retries == 0 {
		t.Fatalf("result %+v", res)
	}
	checkLines(t, q.records(t), n)
}

func TestPartialFailureLaterEntriesAccepted(t *testing.T) {
	// A sink that accepts entries after a failed one: the resend from the
	// first failed entry repeats them, deduplication drops the repeats, and
	// reordering by sequence number (what the trigger does) restores order.
	const n = 20_000
	q := newMemQueue(t)
	var once sync.Once
	q.failCall = func(call, entries int) (int, error) {
		if entries < 3 {
			return entries, nil
		}
		failed := false
		once.Do(func() { failed = true })
		if !failed {
			return entries, nil
		}
		return entries, errSkipMiddle
	}
	c := sinkConfig(t, "lines", strconv.Itoa(n))
	c.MaxRequestBytes = 32 << 10
	c.MaxMessageBytes = 4 << 10
	q.delay = time.Millisecond
	wrapped := &skipMiddle{memQueue: q}
	res := Run(context.Background(), c, wrapped)
	if !res.Delivered {
		t.Fatalf("result %+v", res)
	}
	client := sqsSorted(t, q)
	checkLines(t, client, n)
}

var errSkipMiddle = errors.New("skip middle")

// skipMiddle turns errSkipMiddle into a batch where entry 1 fails and the
// others succeed.
type skipMiddle struct{ *memQueue }

func (s *skipMiddle) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out, err := s.memQueue.SendMessageBatch(ctx, in, o...)
	if !errors.Is(err, errSkipMiddle) {
		return out, err
	}
	s.memQueue.failCall = nil
	first, _ := s.memQueue.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: in.Entries[:1]}, o...)
	rest, _ := s.memQueue.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: in.Entries[2:]}, o...)
	out = &sqs.SendMessageBatchOutput{Successful: append(first.Successful, rest.Successful...),
		Failed: []sqstypes.BatchResultErrorEntry{{Id: in.Entries[1].Id, Code: aws.String("InternalError")}}}
	return out, nil
}

// sqsSorted decodes the queue and orders records by sequence number,
// dropping duplicates, as the trigger does.
func sqsSorted(t *testing.T, q *memQueue) run {
	bySeq := map[uint64]protocol.Record{}
	for _, b := range q.bodies {
		recs, err := protocol.DecodeMessage([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			bySeq[r.Seq] = r
		}
	}
	var r run
	for i := uint64(1); i <= uint64(len(bySeq)); i++ {
		rec, ok := bySeq[i]
		if !ok {
			t.Fatalf("gap at seq %d", i)
		}
		r.records = append(r.records, rec)
	}
	return r
}

func TestSendTimeoutGoesLocalOnly(t *testing.T) {
	q := newMemQueue(t)
	q.failCall = func(int, int) (int, error) { return 0, errors.New("throttled") }
	c := sinkConfig(t, "lines", "100000")
	c.SendTimeout = 300 * time.Millisecond
	res := Run(context.Background(), c, q)
	if res.Delivered || res.QueueErr == nil || res.Exit.Reason != protocol.ReasonCompleted || res.Exit.Lines != 100000 {
		t.Fatalf("result %+v", res)
	}
	// The job was not held up by the dead queue: once the sender gave up on
	// the first request, it never called the queue again (not one give-up
	// period per request).
	for i, id := range q.firstIDs {
		if id != q.firstIDs[0] || !strings.HasSuffix(id, "-1") {
			t.Fatalf("call %d of %d sent %s: the sender kept trying after it gave up", i+1, len(q.firstIDs), id)
		}
	}
	if len(q.firstIDs) == 0 {
		t.Fatal("the queue was never called")
	}
}

// countSink accepts everything at once and counts (for benchmarks).
type countSink struct{}

func (countSink) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return &sqs.SendMessageBatchOutput{}, nil
}

// logWatch is a slog handler that closes seen once a message containing
// want is logged.
type logWatch struct {
	want string
	seen chan struct{}
	once *sync.Once
}

func (h logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (h logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.want) {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
func (h logWatch) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logWatch) WithGroup(string) slog.Handler      { return h }

// TestStoppedReadersTakeWhatThePipeHolds: the job has exited with part of
// its output still in the pipe, and the readers are held up by a stalled
// queue until the runner gives up waiting for the pipes and stops them.
// What the job wrote must still all arrive: a stopped reader takes what the
// pipe holds. The queue opens only once the runner has said it stopped the
// readers, so the test does not depend on timing.
func TestStoppedReadersTakeWhatThePipeHolds(t *testing.T) {
	// About 90 KB: the runner holds about half (a request, a chunk in the
	// channel, one in the reader), the pipe the rest, so the job exits.
	const n = 1000
	q := newMemQueue(t)
	q.gate = make(chan struct{})
	c := sinkConfig(t, "lines", strconv.Itoa(n))
	// Hold little between the pipe and the queue, and give up on the
	// pipes early.
	c.MaxRequestBytes, c.MaxMessageBytes, c.QueueDepth, c.ReadSize = 16<<10, 16<<10, 1, 4<<10
	c.ExitWait = 50 * time.Millisecond
	c.Compress = CompressOff // compressed, the whole output would fit in one request
	w := logWatch{want: "taking what they hold", seen: make(chan struct{}), once: new(sync.Once)}
	c.Log = slog.New(w)
	go func() {
		<-w.seen
		close(q.gate)
	}()
	res := Run(context.Background(), c, q)
	select {
	case <-w.seen:
	default:
		t.Fatal("the readers were not stopped: the test did not test anything")
	}
	if !res.Delivered || res.Exit.Reason != protocol.ReasonCompleted || res.Exit.Lines != n {
		t.Fatalf("result %+v", res)
	}
	checkLines(t, q.records(t), n)
}

// TestUnterminatedLastLineCountsOnce: a last line without its newline that
// went out on its own (after the flush delay) before the stream ended is
// still one line in the exit record. The job ends only once the queue has
// the piece, so the order of events is fixed, not timed.
func TestUnterminatedLastLineCountsOnce(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	q := newMemQueue(t)
	released := false
	q.onBody = func(body string) {
		if !released && strings.Contains(body, "an unterminated last line") {
			released = true
			go func() {
				if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					f.Close()
				}
			}()
		}
	}
	res := Run(context.Background(), sinkConfig(t, "tailwait", fifo), q)
	if !res.Delivered || res.ExitCode() != 0 || !released {
		t.Fatalf("result %+v (piece sent before the end: %v)", res, released)
	}
	if res.Exit.Lines != 1 || res.Exit.Bytes != int64(len("an unterminated last line")) {
		t.Fatalf("exit lines %d bytes %d, want 1 line", res.Exit.Lines, res.Exit.Bytes)
	}
	out, _, order := q.records(t).streams(t)
	if string(out) != "an unterminated last line" || len(order) != 0 {
		t.Fatalf("stdout %q, complete lines %q", out, order)
	}
}

// gate is a FIFO a "gated" test job waits on before each line: release lets
// it write the next one.
type gate string

func newGate(t testing.TB) gate {
	path := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return gate(path)
}

func (g gate) release() {
	go func() {
		if f, err := os.OpenFile(string(g), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
	}()
}
