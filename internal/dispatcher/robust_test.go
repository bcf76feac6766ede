package dispatcher_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// flakyECS fails RunTask as told, then passes calls on to moto.
type flakyECS struct {
	dispatcher.ECSAPI
	fail      func(n int64) (*ecs.RunTaskOutput, error) // nil, nil passes the call on
	dropFirst bool                                      // the first call starts the task but its answer is lost
	calls     atomic.Int64
}

func (f *flakyECS) RunTask(ctx context.Context, in *ecs.RunTaskInput, o ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	n := f.calls.Add(1)
	if f.dropFirst && n == 1 {
		if _, err := f.ECSAPI.RunTask(ctx, in, o...); err != nil {
			return nil, err
		}
		return nil, errDropped
	}
	if out, err := f.fail(n); out != nil || err != nil {
		return out, err
	}
	return f.ECSAPI.RunTask(ctx, in, o...)
}

func withECS(fail func(n int64) (*ecs.RunTaskOutput, error)) (envOption, *flakyECS) {
	f := &flakyECS{fail: fail}
	return func(_ *dispatcher.Settings, c *dispatcher.Clients) { f.ECSAPI = c.ECS; c.ECS = f }, f
}

// flakySQS fails the first n calls of one action.
type flakySQS struct {
	dispatcher.SQSAPI
	action string
	left   atomic.Int64
}

var errDropped = errors.New("read tcp 10.0.0.1:443: connection reset by peer")

func (f *flakySQS) failing(action string) bool { return f.action == action && f.left.Add(-1) >= 0 }

func (f *flakySQS) CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, o ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	if f.failing("CreateQueue") {
		return nil, errDropped
	}
	return f.SQSAPI.CreateQueue(ctx, in, o...)
}

func (f *flakySQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, o ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if f.failing("SendMessage") {
		return nil, errDropped
	}
	return f.SQSAPI.SendMessage(ctx, in, o...)
}

func withSQSFailing(action string, times int64) envOption {
	return func(_ *dispatcher.Settings, c *dispatcher.Clients) {
		f := &flakySQS{SQSAPI: c.SQS, action: action}
		f.left.Store(times)
		c.SQS = f
	}
}

func throttled() error {
	return &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded", Fault: smithy.FaultClient}
}

// claim puts a launch claim in the ledger for a request, as a delivery that
// died after claiming would have left it.
func (e *env) claim(r *protocol.Request, lease time.Time) []byte {
	e.t.Helper()
	b := body(e.t, r)
	err := e.d.LedgerClaim(context.Background(), dispatcher.LedgerItem{RunID: r.RunID, Status: dispatcher.StatusLaunching,
		Job: r.Job, Params: r.Params, Requester: r.Requester.String(), RequestHash: dispatcher.RequestHash(b),
		RequestedAt: r.RequestedAt, CreatedAt: e.clock.Now(), LeaseUntil: lease})
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) decisions(runID string) string {
	var ds []string
	for _, a := range e.auditsOf(runID) {
		ds = append(ds, a["decision"].(string))
	}
	return strings.Join(ds, " ")
}

func TestRetryFinishesLaunchWhoseTaskStarted(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	b := e.claim(r, e.clock.Now().Add(-time.Second))
	arn := e.runTaskDirect(r.RunID) // the dead delivery got this far
	if err := e.invoke(e.sns(b)); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks, want the one already started", len(arns))
	}
	if rec := e.only(r.RunID, protocol.TypeAccepted); rec.Accepted.TaskARN != arn {
		t.Errorf("accepted names %s, want %s", rec.Accepted.TaskARN, arn)
	}
	if it := e.item(r.RunID); it.Status != dispatcher.StatusAccepted || it.TaskARN != arn || it.NotifiedAt.IsZero() {
		t.Errorf("ledger = %+v", it)
	}
	if a := e.auditsOf(r.RunID); len(a) != 1 || a[0]["decision"] != "accepted" || a[0]["reason"] != "finished an interrupted launch" {
		t.Errorf("audit = %v", a)
	}
}

func TestRetriesTakeOverAnInterruptedLaunchOnce(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	payload := e.sns(e.claim(r, e.clock.Now().Add(-time.Second)))
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = e.invoke(payload) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("3 concurrent retries started %d tasks, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
	if got := e.decisions(r.RunID); got != "accepted duplicate duplicate" {
		t.Errorf("decisions = %q", got)
	}
	if a := e.auditsOf(r.RunID)[0]; a["reason"] != "took over an interrupted launch" {
		t.Errorf("audit = %v", a)
	}
}

func TestLiveClaimIsLeftToItsOwner(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	payload := e.sns(e.claim(r, e.clock.Now().Add(30*time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	err := e.invokeCtx(ctx, payload)
	if err == nil || !strings.Contains(err.Error(), "is being launched by another invocation") {
		t.Fatalf("delivery during a live claim: %v, want an error so that Lambda retries", err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 0 {
		t.Fatalf("a live claim was taken over: %v", arns)
	}
	// Lambda's retry comes a minute later; the claim's owner is gone by then.
	e.clock.Add(time.Minute)
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks after the retry, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
	if got := e.decisions(r.RunID); got != "error accepted" {
		t.Errorf("decisions = %q", got)
	}
}

func TestErrorAfterTheClaimIsRetriedToTheEnd(t *testing.T) {
	e := newEnv(t, withSQSFailing("CreateQueue", 1))
	r := e.request()
	payload := e.sns(body(t, r))
	if err := e.invoke(payload); err == nil {
		t.Fatal("a failed CreateQueue was not reported to Lambda")
	}
	if it := e.item(r.RunID); it.Status != dispatcher.StatusLaunching {
		t.Fatalf("ledger = %+v", it)
	}
	e.clock.Add(70 * time.Second) // Lambda retries after about a minute
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
	if got := e.decisions(r.RunID); got != "error accepted" {
		t.Errorf("decisions = %q", got)
	}
}

func TestAcceptedIsWrittenByTheRetry(t *testing.T) {
	e := newEnv(t, withSQSFailing("SendMessage", 1))
	r := e.request()
	payload := e.sns(body(t, r))
	if err := e.invoke(payload); err == nil {
		t.Fatal("a failed SendMessage was not reported to Lambda")
	}
	if it := e.item(r.RunID); it.Status != dispatcher.StatusAccepted || it.TaskARN == "" || !it.NotifiedAt.IsZero() {
		t.Fatalf("ledger = %+v", it)
	}
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
	if got := e.decisions(r.RunID); got != "error accepted duplicate" {
		t.Errorf("decisions = %q", got)
	}
}

func TestRunTaskThrottlingIsRetried(t *testing.T) {
	opt, f := withECS(func(n int64) (*ecs.RunTaskOutput, error) {
		if n <= 3 {
			return nil, throttled()
		}
		return nil, nil
	})
	e := newEnv(t, opt)
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 4 {
		t.Errorf("RunTask called %d times, want 4", f.calls.Load())
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
}

func TestDroppedRunTaskAnswerIsNotRepeated(t *testing.T) {
	// The call reaches ECS and starts the task, but the answer is lost: the
	// retry must find that task rather than start a second one.
	opt, f := withECS(func(int64) (*ecs.RunTaskOutput, error) { return nil, nil })
	f.dropFirst = true
	e := newEnv(t, opt)
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("%d tasks after a dropped RunTask answer, want 1", len(arns))
	}
	if f.calls.Load() != 1 {
		t.Errorf("RunTask called %d times, want 1", f.calls.Load())
	}
	e.only(r.RunID, protocol.TypeAccepted)
}

func TestRunTaskThrottledPastTheInvocationRejects(t *testing.T) {
	opt, _ := withECS(func(int64) (*ecs.RunTaskOutput, error) { return nil, throttled() })
	e := newEnv(t, opt)
	r := e.request()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.invokeCtx(ctx, e.sns(body(t, r))); err != nil {
		t.Fatal(err)
	}
	rec := e.only(r.RunID, protocol.TypeRejected)
	if rec.Rejected.Code != protocol.RejectLaunch || !strings.Contains(rec.Rejected.Reason, "ECS did not take the task within") ||
		!strings.Contains(rec.Rejected.Reason, "ThrottlingException: Rate exceeded") {
		t.Errorf("rejected = %+v", rec.Rejected)
	}
	if it := e.item(r.RunID); it.Status != dispatcher.StatusRejected || it.RejectCode != protocol.RejectLaunch {
		t.Errorf("ledger = %+v", it)
	}
}

func TestRunTaskFailuresReject(t *testing.T) {
	cases := []struct {
		name   string
		opt    envOption
		reason string
	}{
		{"bad subnet", func(s *dispatcher.Settings, _ *dispatcher.Clients) { s.Subnets = []string{"subnet-doesnotexist"} },
			"could not start the task: InvalidSubnetID.NotFound: The subnet ID 'subnet-doesnotexist' does not exist"},
		{"access denied", func() envOption {
			o, _ := withECS(func(int64) (*ecs.RunTaskOutput, error) {
				return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient,
					Message: "User: arn:aws:sts::123456789012:assumed-role/dispatcher/fn is not authorized to perform: iam:PassRole"}
			})
			return o
		}(), "could not start the task: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/dispatcher/fn is not authorized to perform: iam:PassRole"},
		{"no capacity", func() envOption {
			o, _ := withECS(func(int64) (*ecs.RunTaskOutput, error) {
				return &ecs.RunTaskOutput{Failures: []ecstypes.Failure{{Reason: aws.String("Capacity is unavailable at this time. Please try again later or in a different availability zone")}}}, nil
			})
			return o
		}(), "could not start the task: ECS refused the task: Capacity is unavailable at this time."},
		{"unknown task definition", func() envOption {
			o, _ := withECS(func(int64) (*ecs.RunTaskOutput, error) {
				return nil, &smithy.GenericAPIError{Code: "ClientException", Message: "Unable to describe task definition.", Fault: smithy.FaultClient}
			})
			return o
		}(), "could not start the task: ClientException: Unable to describe task definition."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.opt)
			r := e.request()
			if err := e.run(r); err != nil {
				t.Fatal(err)
			}
			rec := e.only(r.RunID, protocol.TypeRejected)
			if rec.Rejected.Code != protocol.RejectLaunch || !strings.HasPrefix(rec.Rejected.Reason, c.reason) {
				t.Errorf("rejected = %+v\nwant reason starting %q", rec.Rejected, c.reason)
			}
			if arns := e.tasks(r.RunID); len(arns) != 0 {
				t.Errorf("tasks %v", arns)
			}
			if it := e.item(r.RunID); it.Status != dispatcher.StatusRejected || it.Reason != rec.Rejected.Reason {
				t.Errorf("ledger = %+v", it)
			}
			if got := e.decisions(r.RunID); got != "rejected" {
				t.Errorf("decisions = %q", got)
			}
		})
	}
}

func TestCancelDuringLaunchStopsTheTaskOnceStarted(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	payload := e.sns(e.claim(r, e.clock.Now().Add(-time.Second)))
	if err := e.short(protocol.KindCancel, r.RunID); err != nil {
		t.Fatal(err)
	}
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	arns := e.tasks(r.RunID)
	if len(arns) != 1 {
		t.Fatalf("%d tasks", len(arns))
	}
	task := e.describe(arns[0])
	if aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(task.StoppedReason), "cancelled by github-actions") {
		t.Errorf("task %s %q, want stopped by the earlier cancel", aws.ToString(task.LastStatus), aws.ToString(task.StoppedReason))
	}
	e.only(r.RunID, protocol.TypeAccepted)
}

func TestSweepAnswersALaunchNobodyFinished(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.claim(r, e.clock.Now().Add(65*time.Second))
	// The dead delivery created the queue; no retry ever came.
	if _, err := e.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName(e.name, r.RunID)),
		Attributes: map[string]string{"FifoQueue": "true"}}); err != nil {
		t.Fatal(err)
	}
	sweep := e.event("scheduled-sweep.json", nil)
	e.clock.Add(5 * time.Minute)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	if recs := e.records(r.RunID); len(recs) != 0 {
		t.Fatalf("sweep answered a launch that may still be retried: %+v", recs)
	}
	e.clock.Add(15 * time.Minute)
	if err := e.invoke(sweep); err != nil {
		t.Fatal(err)
	}
	rec := e.only(r.RunID, protocol.TypeRejected)
	if rec.Rejected.Code != protocol.RejectLaunch || !strings.Contains(rec.Rejected.Reason, "interrupted") {
		t.Errorf("rejected = %+v", rec.Rejected)
	}
	if it := e.item(r.RunID); it.Status != dispatcher.StatusRejected || it.EndedAt.IsZero() {
		t.Errorf("ledger = %+v", it)
	}
	// A late retry now repeats nothing.
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 0 {
		t.Errorf("late retry started %v", arns)
	}
}
