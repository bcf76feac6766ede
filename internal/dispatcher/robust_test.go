package dispatcher_test

import (
	"context"
	"errors"
	"sort"
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
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// flakyECS fails RunTask as told, then passes calls on to moto.
type flakyECS struct {
	dispatcher.ECSAPI
	fail      func(n int64) (*ecs.RunTaskOutput, error) // nil, nil passes the call on
	dropFirst bool                                      // the first call starts the task but its answer is lost
	calls     atomic.Int64
	hidden    atomic.Bool // ListTasks does not show the tasks yet (it is eventually consistent)
	onList    func()      // called before each ListTasks
}

func (f *flakyECS) ListTasks(ctx context.Context, in *ecs.ListTasksInput, o ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	if f.onList != nil {
		f.onList()
	}
	if f.hidden.Load() {
		return &ecs.ListTasksOutput{}, nil
	}
	return f.ECSAPI.ListTasks(ctx, in, o...)
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
	b := e.body(r)
	err := e.d.LedgerClaim(context.Background(), dispatcher.LedgerItem{RunID: r.RunID, Status: ledger.Launching,
		Job: r.Job, Params: r.Params, Requester: r.Requester.String(), RequestedBy: e.id.ARN, RequestHash: dispatcher.RequestHash(b),
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
	if it := e.item(r.RunID); it.Status != ledger.Accepted || it.TaskARN != arn || it.NotifiedAt.IsZero() {
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
	// The duplicates may write their lines before the winner writes its
	// own (each delivery first verifies its proof with STS): count them.
	decisions := strings.Fields(e.decisions(r.RunID))
	sort.Strings(decisions)
	if got := strings.Join(decisions, " "); got != "accepted duplicate duplicate" {
		t.Errorf("decisions = %q", got)
	}
	for _, a := range e.auditsOf(r.RunID) {
		if a["decision"] == "accepted" && a["reason"] != "took over an interrupted launch" {
			t.Errorf("audit = %v", a)
		}
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
	payload := e.sns(e.body(r))
	if err := e.invoke(payload); err == nil {
		t.Fatal("a failed CreateQueue was not reported to Lambda")
	}
	if it := e.item(r.RunID); it.Status != ledger.Launching {
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
	payload := e.sns(e.body(r))
	if err := e.invoke(payload); err == nil {
		t.Fatal("a failed SendMessage was not reported to Lambda")
	}
	if it := e.item(r.RunID); it.Status != ledger.Accepted || it.TaskARN == "" || !it.NotifiedAt.IsZero() {
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

// An ambiguous RunTask failure (throttling, a server error, a dropped
// connection) that lasts longer than the invocation is not a refusal: the
// last call may have started the task although ListTasks, eventually
// consistent, does not show it yet. The invocation fails, Lambda retries
// after the lease, and the retry settles it.
func TestAmbiguousRunTaskFailurePastTheInvocationIsRetriedNotRejected(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		dropFirst bool // the first call starts the task, and ListTasks misses it
		reason    string
	}{
		{"throttling", throttled(), false, "throttled): ThrottlingException: Rate exceeded"},
		{"server error", &smithy.GenericAPIError{Code: "ServerException", Message: "Service unavailable", Fault: smithy.FaultServer}, false,
			"the last may have started the task, so the retry looks for it first): ServerException: Service unavailable"},
		{"dropped connection after the task started", errDropped, true, "connection reset by peer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var failing atomic.Bool
			failing.Store(true)
			opt, f := withECS(func(int64) (*ecs.RunTaskOutput, error) {
				if failing.Load() {
					return nil, c.err
				}
				return nil, nil
			})
			f.dropFirst = c.dropFirst
			f.hidden.Store(c.dropFirst)
			e := newEnv(t, opt)
			r := e.request()
			payload := e.sns(e.body(r))
			// The invocation's time must cover verifying the proof and the
			// claim before RunTask is first tried (one second did not, on a
			// loaded machine); RunTask then fails until the time runs out.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := e.invokeCtx(ctx, payload)
			cancel()
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("invocation ended with %v, want an error (so that Lambda retries) containing %q", err, c.reason)
			}
			if recs := e.records(r.RunID); len(recs) != 0 {
				t.Fatalf("the run was answered before anybody knew whether its task exists: %+v", recs)
			}
			if it := e.item(r.RunID); it.Status != ledger.Launching || it.RejectCode != "" || !it.LeaseUntil.Equal(e.clock.Now()) {
				t.Fatalf("ledger = %+v, want a launching claim whose lease was released", it)
			}
			want := 0
			if c.dropFirst {
				want = 1
			}
			if arns := e.tasks(r.RunID); len(arns) != want {
				t.Fatalf("%d tasks, want %d", len(arns), want)
			}

			// Lambda retries about a minute later: ListTasks shows the task
			// by then, and ECS takes calls again.
			failing.Store(false)
			f.hidden.Store(false)
			e.clock.Add(70 * time.Second)
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
		})
	}
}

// A take-over may not launch after the request's own expiry, even though
// the claim is younger than max_request_age: it rejects (expired) instead.
func TestTakeOverAfterTheRequestExpired(t *testing.T) {
	for _, taskExists := range []bool{false, true} {
		t.Run(map[bool]string{false: "no task: expired", true: "task exists: accepted"}[taskExists], func(t *testing.T) {
			e := newEnv(t)
			now := e.clock.Now()
			// Claimed 10 s before the request expired; the invocation died.
			r := e.request(func(r *protocol.Request) { r.ExpiresAt = now.Add(10 * time.Second) })
			payload := e.sns(e.claim(r, now.Add(65*time.Second)))
			var arn string
			if taskExists {
				arn = e.runTaskDirect(r.RunID)
			}
			// Lambda's last retry, 3 minutes later: past expires_at + 2 min
			// skew, well within max_request_age (15 min) of the claim.
			e.clock.Add(3 * time.Minute)
			if err := e.invoke(payload); err != nil {
				t.Fatal(err)
			}
			if !taskExists {
				rec := e.only(r.RunID, protocol.TypeRejected)
				if rec.Rejected.Code != protocol.RejectExpired || !strings.Contains(rec.Rejected.Reason, "expired at "+r.ExpiresAt.UTC().Format(time.RFC3339)+" before the broker could start its task") {
					t.Errorf("rejected = %+v", rec.Rejected)
				}
				if arns := e.tasks(r.RunID); len(arns) != 0 {
					t.Errorf("a take-over after the expiry launched %v", arns)
				}
				if it := e.item(r.RunID); it.Status != ledger.Rejected || it.RejectCode != protocol.RejectExpired || it.NotifiedAt.IsZero() {
					t.Errorf("ledger = %+v", it)
				}
				return
			}
			if rec := e.only(r.RunID, protocol.TypeAccepted); rec.Accepted.TaskARN != arn {
				t.Errorf("accepted %s, want the existing task %s", rec.Accepted.TaskARN, arn)
			}
			if arns := e.tasks(r.RunID); len(arns) != 1 {
				t.Errorf("%d tasks, want the one that existed", len(arns))
			}
		})
	}
}

// A rejection never contradicts a task the ledger knows of: here ListTasks
// misses the task, but its ECS event, arriving while the take-over decides,
// named it in the ledger, so the run is accepted instead of rejected.
func TestRejectionYieldsToATaskAnECSEventNamed(t *testing.T) {
	opt, f := withECS(func(int64) (*ecs.RunTaskOutput, error) {
		return nil, errors.New("RunTask must not be called")
	})
	e := newEnv(t, opt)
	now := e.clock.Now()
	r := e.request(func(r *protocol.Request) { r.ExpiresAt = now.Add(10 * time.Second) })
	payload := e.sns(e.claim(r, now.Add(65*time.Second)))
	arn := e.runTaskDirect(r.RunID)
	f.hidden.Store(true)
	e.clock.Add(3 * time.Minute) // past the expiry: the take-over would reject
	var once sync.Once
	f.onList = func() {
		once.Do(func() {
			if err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": arn, "StartedBy": r.RunID})); err != nil {
				t.Error(err)
			}
		})
	}
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	if rec := e.only(r.RunID, protocol.TypeAccepted); rec.Accepted.TaskARN != arn {
		t.Errorf("accepted %s, want %s", rec.Accepted.TaskARN, arn)
	}
	if it := e.item(r.RunID); it.Status != ledger.Accepted || it.TaskARN != arn || it.RejectCode != "" {
		t.Errorf("ledger = %+v", it)
	}
	if a := e.auditsOf(r.RunID); len(a) != 1 || a[0]["decision"] != "accepted" || !strings.Contains(a[0]["reason"].(string), "accepted rather than rejected") {
		t.Errorf("audit = %v", a)
	}
}

// An ECS event for a run still being launched names its task in the ledger
// at once; the retry after the launching invocation died accepts that task
// without ListTasks and without a second RunTask.
func TestTaskEventNamesTheTaskOfALaunchInProgress(t *testing.T) {
	opt, f := withECS(func(int64) (*ecs.RunTaskOutput, error) {
		return nil, errors.New("RunTask must not be called")
	})
	e := newEnv(t, opt)
	r := e.request()
	payload := e.sns(e.claim(r, e.clock.Now().Add(30*time.Second)))
	arn := e.runTaskDirect(r.RunID)
	f.hidden.Store(true)
	if err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": arn, "StartedBy": r.RunID})); err != nil {
		t.Fatal(err)
	}
	if it := e.item(r.RunID); it.Status != ledger.Launching || it.TaskARN != arn {
		t.Fatalf("ledger = %+v, want the task named while launching", it)
	}
	e.clock.Add(time.Minute)
	if err := e.invoke(payload); err != nil {
		t.Fatal(err)
	}
	if rec := e.only(r.RunID, protocol.TypeAccepted); rec.Accepted.TaskARN != arn {
		t.Errorf("accepted %s, want %s", rec.Accepted.TaskARN, arn)
	}
	if f.calls.Load() != 0 {
		t.Errorf("RunTask called %d times", f.calls.Load())
	}
}

// If a task turns up for a run the trigger was told is rejected, the
// dispatcher stops it, so that what happens is what was reported.
func TestTaskOfARejectedRunIsStopped(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	e.claim(r, e.clock.Now().Add(-time.Second))
	if err := e.d.LedgerReject(context.Background(), r.RunID, protocol.RejectLaunch, "could not start the task"); err != nil {
		t.Fatal(err)
	}
	arn := e.runTaskDirect(r.RunID)
	if err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": arn, "StartedBy": r.RunID})); err != nil {
		t.Fatal(err)
	}
	task := e.describe(arn)
	if aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(task.StoppedReason), "was rejected (launch-failed); stopping a task that started anyway") {
		t.Errorf("task %s %q, want it stopped", aws.ToString(task.LastStatus), aws.ToString(task.StoppedReason))
	}
	if it := e.item(r.RunID); it.TaskARN != arn || it.Status != ledger.Rejected {
		t.Errorf("ledger = %+v", it)
	}
	if a := e.auditsOf(r.RunID); len(a) != 1 || a[0]["decision"] != "cancelled" || a[0]["task_arn"] != arn {
		t.Errorf("audit = %v", a)
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
			if it := e.item(r.RunID); it.Status != ledger.Rejected || it.Reason != rec.Rejected.Reason {
				t.Errorf("ledger = %+v", it)
			}
			if got := e.decisions(r.RunID); got != "rejected" {
				t.Errorf("decisions = %q", got)
			}
		})
	}
}

// shortDuringLaunch sends a cancel or release (kind) for a run whose launch
// claim is held, then lets the retried launch go on, and returns the run's
// only task as ECS describes it afterwards.
func (e *env) shortDuringLaunch(kind protocol.Kind) (*protocol.Request, ecstypes.Task) {
	e.t.Helper()
	r := e.request()
	payload := e.sns(e.claim(r, e.clock.Now().Add(-time.Second)))
	if err := e.short(kind, r.RunID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.invoke(payload); err != nil {
		e.t.Fatal(err)
	}
	arns := e.tasks(r.RunID)
	if len(arns) != 1 {
		e.t.Fatalf("%d tasks", len(arns))
	}
	return r, e.describe(arns[0])
}

func TestCancelDuringLaunchStopsTheTaskOnceStarted(t *testing.T) {
	e := newEnv(t)
	r, task := e.shortDuringLaunch(protocol.KindCancel)
	if aws.ToString(task.LastStatus) != "STOPPED" || !strings.Contains(aws.ToString(task.StoppedReason), "cancelled by "+e.id.ARN) {
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
	if it := e.item(r.RunID); it.Status != ledger.Rejected || it.EndedAt.IsZero() {
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
