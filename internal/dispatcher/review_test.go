package dispatcher_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/faultproxy"
)

// Findings of the review in issue 24, dispatcher side. Each test failed
// before its fix.

// TestSupersedeTouchesOnlyItsOwnJob: a principal not allowed to run
// migrate (a Jenkins session outside release-*) starts website, which
// shares migrate's group with on_full supersede. Before the fix the
// waiting migrate run was refused as superseded.
func TestSupersedeTouchesOnlyItsOwnJob(t *testing.T) {
	e := newEnv(t)
	for _, job := range []string{"website", "migrate"} {
		j := e.cfg.Jobs[job]
		j.Concurrency, j.ConcurrencyGroup, j.OnFull = 1, "prod", config.OnFullSupersede
		e.cfg.Jobs[job] = j
	}
	holder := e.submit()
	e.wantStatus(holder, ledger.Accepted)
	mig := e.request(func(r *protocol.Request) { r.Job, r.Params = "migrate", map[string]string{"steps": "2"} })
	if err := e.run(mig); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Millisecond)
	e.wantStatus(mig.RunID, ledger.Queued)
	stranger := e.assume(jenkinsRole, "nightly-7")
	web := e.request()
	if err := e.runAs(stranger, web); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Millisecond)
	e.wantStatus(mig.RunID, ledger.Queued) // before: rejected, superseded
	e.wantStatus(web.RunID, ledger.Queued)
	// A newer website run still supersedes the older website waiter.
	web2 := e.submit()
	e.wantStatus(web.RunID, ledger.Rejected)
	if it := e.item(web.RunID); it.RejectCode != protocol.RejectSuperseded {
		t.Errorf("older website waiter: %s %q, want %s", it.RejectCode, it.Reason, protocol.RejectSuperseded)
	}
	e.wantStatus(mig.RunID, ledger.Queued)
	// The slot frees: the oldest waiter (migrate) starts, website waits on.
	e.stop(holder)
	e.wantStatus(mig.RunID, ledger.Accepted)
	e.wantStatus(web2, ledger.Queued)
}

// runForeignTask starts, in the broker's cluster, a task of a family that
// is no job's, with startedBy set to runID: what anyone who may run tasks
// in the cluster can do. It returns the task's ARN and its family.
func (e *env) runForeignTask(runID string) (arn, family string) {
	e.t.Helper()
	ctx := context.Background()
	td, err := e.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(e.res.TaskDefinitions["website"])})
	if err != nil {
		e.t.Fatal(err)
	}
	def := td.TaskDefinition
	family = e.name + "-foreign"
	reg, err := e.ecs.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), NetworkMode: def.NetworkMode, RequiresCompatibilities: def.RequiresCompatibilities,
		Cpu: def.Cpu, Memory: def.Memory, ContainerDefinitions: def.ContainerDefinitions,
		ExecutionRoleArn: def.ExecutionRoleArn, TaskRoleArn: def.TaskRoleArn})
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := e.ecs.RunTask(ctx, &ecs.RunTaskInput{Cluster: aws.String(e.res.ClusterARN), TaskDefinition: reg.TaskDefinition.TaskDefinitionArn,
		LaunchType: ecstypes.LaunchTypeFargate, StartedBy: aws.String(runID),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{Subnets: e.res.Subnets[:1], SecurityGroups: e.res.SecurityGroups}}})
	if err != nil || len(out.Tasks) != 1 {
		e.t.Fatalf("running a foreign task: %v %+v", err, out)
	}
	return aws.ToString(out.Tasks[0].TaskArn), family
}

// TestTaskOfAnotherFamilyCannotEndARun: a task of another family started
// in the broker cluster with startedBy=<run id> stopped; its ECS event
// named a waiting run. Before the fix the run ended (stopped, exit 3)
// without ever starting; now the event is ignored and the run waits on.
func TestTaskOfAnotherFamilyCannotEndARun(t *testing.T) {
	e := newEnv(t)
	e.limit(1, "queue")
	holder, waiting := e.submit(), e.submit()
	e.wantStatus(waiting, ledger.Queued)
	arn, family := e.runForeignTask(waiting)
	if err := e.invoke(e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": arn, "StartedBy": waiting, "Family": family, "Version": 3})); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(waiting, ledger.Queued)
	if it := e.item(waiting); it.TaskARN != "" || it.ExitCode != nil {
		t.Errorf("waiting run took the foreign task: task %q exit %v", it.TaskARN, it.ExitCode)
	}
	// The job's own task still ends its run, and the waiting one starts.
	e.stop(holder)
	e.wantStatus(holder, ledger.Stopped)
	e.wantStatus(waiting, ledger.Accepted)
}

// TestForgedTaskEventStopsNoOtherRunsTask: an event handed to the
// dispatcher directly, naming a rejected run and another run's running
// task (of the job's own, pinned, revision). Before the fix the dispatcher
// stopped the other run's task; now it stops only tasks ListTasks finds
// started by the rejected run in its cluster: none.
func TestForgedTaskEventStopsNoOtherRunsTask(t *testing.T) {
	e := newEnv(t)
	victim := e.submit()
	arns := e.tasks(victim)
	if len(arns) != 1 {
		t.Fatalf("victim has %d tasks", len(arns))
	}
	refused := e.request(func(r *protocol.Request) { r.Params = map[string]string{"version": "not-a-version"} })
	if err := e.run(refused); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(refused.RunID, ledger.Rejected)
	err := e.invoke(e.event("ecs-task-running.json", map[string]any{"TaskArn": arns[0], "StartedBy": refused.RunID, "Version": 2}))
	if err == nil || !strings.Contains(err.Error(), "no task started by run "+refused.RunID) {
		t.Errorf("forged event: %v, want an error naming no task of the rejected run", err)
	}
	if st := aws.ToString(e.describe(arns[0]).DesiredStatus); st != "RUNNING" {
		t.Errorf("the victim's task is now %s, want RUNNING: a forged event stopped it", st)
	}
	// A cancel of the victim by its requester still stops its own task.
	if err := e.short(protocol.KindCancel, victim); err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(e.describe(arns[0]).DesiredStatus); st != "STOPPED" {
		t.Errorf("the victim's task is %s after its cancel, want STOPPED", st)
	}
}

// TestStalledLedgerReadEndsBeforeTheInvocation: a DynamoDB read that does
// not answer (the fault proxy holds it for a minute) during a run request.
// Before the fix the read ran until the invocation's own deadline, which in
// Lambda is a timeout with nothing said; now the call's own bound ends it
// with an error naming the call, while the invocation still has time to
// report it (and Lambda retries the event).
func TestStalledLedgerReadEndsBeforeTheInvocation(t *testing.T) {
	awsCfg := sharedMoto(t)
	proxy, err := faultproxy.Start(motoServer.URL, faultproxy.Options{LatencySpike: time.Minute,
		Plan: func(service, action string, nth int) faultproxy.Fault {
			if service == "dynamodb" && action == "GetItem" {
				return faultproxy.Latency
			}
			return faultproxy.None
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	e := newEnv(t, func(_ *dispatcher.Settings, c *dispatcher.Clients) {
		c.Dynamo = dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	})
	// Lambda's deadline 4 s away; the dispatcher keeps 1 s of it to report.
	e.d.SetWaits(50*time.Millisecond, time.Second, 20*time.Millisecond, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	err = e.invokeCtx(ctx, e.sns(e.body(e.request())))
	if ctx.Err() != nil {
		t.Fatalf("the invocation ran into its deadline (a Lambda timeout): %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "DynamoDB GetItem gave no answer within") || !strings.Contains(err.Error(), "will be retried") {
		t.Fatalf("err = %v, want the stalled read named", err)
	}
	// The failure is in the audit log too, as an error Lambda retries.
	found := false
	for _, a := range e.audits() {
		if a["decision"] == dispatcher.DecisionError && strings.Contains(a["reason"].(string), "DynamoDB GetItem gave no answer") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit line names the stalled read: %v", e.audits())
	}
}

// TestIdempotencyKeyBelongsToItsOwner: the reported case. Jenkins starts
// website with --idempotency-key jenkins-release-42; another principal
// starts migrate with the same key. Before the fix both ran, and Jenkins'
// attach --key took the stranger's (newer) run; now the stranger's run is
// refused key-in-use and launches nothing. The key stays its owner's,
// whatever the session (a later Jenkins build, another job).
func TestIdempotencyKeyBelongsToItsOwner(t *testing.T) {
	e := newEnv(t)
	const key = "jenkins-release-42"
	jenkins := e.assume(jenkinsRole, "release-42")
	mine := e.request(func(r *protocol.Request) { r.IdempotencyKey = key })
	if err := e.runAs(jenkins, mine); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(mine.RunID, ledger.Accepted)
	e.clock.Add(time.Millisecond)
	theirs := e.request(func(r *protocol.Request) {
		r.Job, r.Params, r.IdempotencyKey = "migrate", map[string]string{"steps": "1"}, key
	})
	if err := e.run(theirs); err != nil { // github-deployer, allowed to run migrate
		t.Fatal(err)
	}
	rej := e.only(theirs.RunID, protocol.TypeRejected).Rejected
	if rej.Code != protocol.RejectKeyInUse || !strings.Contains(rej.Reason, key) || strings.Contains(rej.Reason, "jenkins-deployer") {
		t.Errorf("stranger's run under the key: %+v, want %s naming the key (not its owner)", rej, protocol.RejectKeyInUse)
	}
	if n := len(e.tasks(theirs.RunID)); n != 0 {
		t.Errorf("the stranger's run got %d tasks", n)
	}
	// Another session of the owner's role may use the key again.
	e.clock.Add(time.Millisecond)
	again := e.request(func(r *protocol.Request) { r.IdempotencyKey = key })
	if err := e.runAs(e.assume(jenkinsRole, "release-43"), again); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(again.RunID, ledger.Accepted)
}

// TestExitCodeDisagreementECSWins (issue 22): a job that exits 3 has
// forged an exit record saying 0 into the run log (as a job sharing the
// runner's stdout could). ECS reports the runner container exited 3. The
// ledger keeps ECS's 3 (outcome failed) and flags the disagreement in the
// ledger, the audit log and the finished event; a run whose log agrees is
// not flagged.
func TestExitCodeDisagreementECSWins(t *testing.T) {
	rec := &eventRecorder{}
	awsCfg := sharedMoto(t)
	logs := cloudwatchlogs.NewFromConfig(awsCfg)
	e := newEnv(t, withEvents(rec), func(s *dispatcher.Settings, c *dispatcher.Clients) {
		s.RunLogGroup, c.Logs = "/deploy-broker/runs-"+fmt.Sprint(time.Now().UnixNano()), logs
	})
	ctx := context.Background()
	if _, err := logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(e.set.RunLogGroup)}); err != nil {
		t.Fatal(err)
	}
	finish := func(logCode int) string {
		runID := e.submit()
		arns := e.tasks(runID)
		if len(arns) != 1 {
			t.Fatalf("run has %d tasks", len(arns))
		}
		stream := protocol.RunLogStream("website", "runner", arns[0])
		if _, err := logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(e.set.RunLogGroup), LogStreamName: aws.String(stream)}); err != nil {
			t.Fatal(err)
		}
		line := protocol.EncodeRunLogLine(nil, &protocol.RunLogLine{Run: runID, N: 1, Exit: &protocol.Exit{Code: logCode, Reason: protocol.ReasonCompleted,
			Outputs: []protocol.JobOutput{{Name: "image", Value: "app:4"}}}})
		if _, err := logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(e.set.RunLogGroup), LogStreamName: aws.String(stream),
			LogEvents: []cwltypes.InputLogEvent{{Message: aws.String(strings.TrimSpace(string(line))), Timestamp: aws.Int64(time.Now().UnixMilli())}}}); err != nil {
			t.Fatal(err)
		}
		e.stop(runID) // the STOPPED event: the runner container exited 3
		return runID
	}
	forged := finish(0)
	it := e.item(forged)
	if it.ExitCode == nil || *it.ExitCode != 3 || it.LogExitCode == nil || *it.LogExitCode != 0 || ledger.Outcome(it) != ledger.OutcomeFailed {
		t.Errorf("ledger: exit %v, log exit %v, outcome %s; want ECS's 3 (failed) and the log's 0 flagged", it.ExitCode, it.LogExitCode, ledger.Outcome(it))
	}
	var flagged bool
	for _, a := range e.auditsOf(forged) {
		if a["decision"] == dispatcher.DecisionExitDisagrees && strings.Contains(a["reason"].(string), "exit code 0") && strings.Contains(a["reason"].(string), "exited 3") {
			flagged = true
		}
	}
	if !flagged {
		t.Errorf("no %s audit line for run %s: %v", dispatcher.DecisionExitDisagrees, forged, e.auditsOf(forged))
	}
	var ended *protocol.RunEvent
	for _, ev := range rec.of(forged) {
		if ev.State == protocol.EventFinished {
			ended = &ev
		}
	}
	if ended == nil || ended.Outcome != protocol.OutcomeFailed || ended.ExitCode == nil || *ended.ExitCode != 3 || ended.LogExitCode == nil || *ended.LogExitCode != 0 {
		t.Errorf("finished event %+v, want outcome failed, exit 3, log exit 0", ended)
	}
	// A run whose log agrees with ECS carries no flag.
	honest := finish(3)
	if it := e.item(honest); it.LogExitCode != nil || it.Outputs["image"] != "app:4" {
		t.Errorf("agreeing run: log exit %v, outputs %v", it.LogExitCode, it.Outputs)
	}
	for _, a := range e.auditsOf(honest) {
		if a["decision"] == dispatcher.DecisionExitDisagrees {
			t.Errorf("agreeing run flagged: %v", a)
		}
	}
}
