package localbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// agent stands in for Fargate: it turns the emulator's task records into
// runner processes.
type agent struct {
	ecs        *ecs.Client
	cluster    string
	region     string
	account    string
	runnerPath string
	dir        string   // working directory of runner processes
	hostEnv    []string // where baseProcessEnv takes PATH, HOME…; nil: os.Environ()
	env        []string // base environment of runner processes (emulator endpoint, credentials)
	logDir     string   // where each task's own output goes ("CloudWatch"); "" discards
	failStart  map[string]string
	taskEnv    map[string][]string // task definition family → its container's environment
	poll       time.Duration
	invoke     invoker
	log        *slog.Logger
	logs       *cloudwatchlogs.Client // run logs (runlogs.go); nil: none
	logGroup   string
	// startDelay is the modelled Fargate cold start of every task
	// (startdelay.go); 0 starts the runner at once.
	startDelay time.Duration

	mu       sync.Mutex
	closing  bool // stopAll began: no task starts a runner any more
	tasks    map[string]*localTask
	wg       sync.WaitGroup
	nextUID  int    // isolation.go
	uidLocks string // uids.go; "": uidLockDir()
}

type localTask struct {
	arn, runID, job string
	taskDef         string // the task definition revision it runs, as ECS's events name it
	cmd             *exec.Cmd
	version         uint64
	stopReason      string // set when the task was stopped through ECS
	uid             *uidLease
	exited          chan struct{}
	// The task's ECS timestamps, as its events carry them (startdelay.go).
	created, pullStarted, pullStopped, started time.Time
	stop                                       chan struct{} // closed when the task is stopped (signalStop)
	stopOnce                                   sync.Once
}

func (a *agent) run(ctx context.Context) {
	a.sayIsolation()
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		if err := a.reconcile(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("agent: reconcile failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcile starts processes for new tasks and signals those whose task was
// stopped.
func (a *agent) reconcile(ctx context.Context) error {
	out, err := a.ecs.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(a.cluster), DesiredStatus: ecstypes.DesiredStatusRunning})
	if err != nil {
		return fmt.Errorf("listing tasks: %w", err)
	}
	running := map[string]bool{}
	var fresh []string
	a.mu.Lock()
	for _, arn := range out.TaskArns {
		running[arn] = true
		if _, known := a.tasks[arn]; !known {
			fresh = append(fresh, arn)
		}
	}
	var stopped []*localTask
	for arn, t := range a.tasks {
		if !running[arn] && t.stopReason == "" {
			stopped = append(stopped, t)
		}
	}
	a.mu.Unlock()

	if len(fresh) > 0 {
		desc, err := a.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(a.cluster), Tasks: fresh, Include: []ecstypes.TaskField{ecstypes.TaskFieldTags}})
		if err != nil {
			return fmt.Errorf("describing new tasks: %w", err)
		}
		for _, task := range desc.Tasks {
			a.start(ctx, task)
		}
	}
	if len(stopped) > 0 {
		arns := make([]string, len(stopped))
		for i, t := range stopped {
			arns[i] = t.arn
		}
		reasons := map[string]string{}
		if desc, err := a.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(a.cluster), Tasks: arns}); err == nil {
			for _, task := range desc.Tasks {
				reasons[aws.ToString(task.TaskArn)] = aws.ToString(task.StoppedReason)
			}
		}
		for _, t := range stopped {
			reason := reasons[t.arn]
			if reason == "" {
				reason = "Task stopped by user"
			}
			a.mu.Lock()
			t.stopReason = reason
			cmd := t.cmd
			a.mu.Unlock()
			t.signalStop() // a task still starting (startdelay.go) ends there
			if cmd != nil && cmd.Process != nil {
				a.log.Info("agent: task stopped, sending SIGTERM to the runner", "run_id", t.runID, "reason", reason)
				_ = cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	return nil
}

// start takes one new task: at once, or after the modelled cold start
// (startdelay.go), it launches the task's runner.
func (a *agent) start(ctx context.Context, task ecstypes.Task) {
	t := &localTask{arn: aws.ToString(task.TaskArn), runID: aws.ToString(task.StartedBy), taskDef: aws.ToString(task.TaskDefinitionArn),
		exited: make(chan struct{}), stop: make(chan struct{}), created: createdAt(task, time.Now())}
	a.mu.Lock()
	a.tasks[t.arn] = t
	closing := a.closing
	a.mu.Unlock()
	if a.startDelay <= 0 || closing { // closing: launch ends it at once
		a.launch(ctx, task, t)
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if a.provision(ctx, t) {
			a.launch(ctx, task, t)
		}
	}()
}

// launch starts the runner of a task, as Fargate would: the task
// definition's image entrypoint (the runner) with the overridden command
// and environment.
func (a *agent) launch(ctx context.Context, task ecstypes.Task, t *localTask) {
	a.mu.Lock()
	closing := a.closing
	a.mu.Unlock()
	if closing {
		a.abort(ctx, t)
		return
	}

	// As in ECS: the task definition's environment, then the overrides.
	var argv []string
	env := append([]string(nil), a.taskEnv[taskFamily(aws.ToString(task.TaskDefinitionArn))]...)
	if task.Overrides != nil {
		for _, co := range task.Overrides.ContainerOverrides {
			if aws.ToString(co.Name) != config.ContainerName {
				continue
			}
			argv = co.Command
			for _, kv := range co.Environment {
				env = append(env, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
				if aws.ToString(kv.Name) == protocol.EnvJob {
					t.job = aws.ToString(kv.Value)
				}
			}
		}
	}
	iso, lease, err := a.isolation(task)
	if err != nil {
		a.fail(ctx, t, "CannotStartContainerError: "+err.Error())
		return
	}
	t.uid = lease // let go by fail or when the runner has exited
	env = append(env, iso...)
	if reason, ok := a.failStart[t.job]; ok {
		a.fail(ctx, t, reason)
		return
	}
	if len(argv) == 0 {
		a.fail(ctx, t, "CannotStartContainerError: the task has no command override")
		return
	}
	cmd := exec.Command(a.runnerPath, argv...)
	cmd.Dir = a.dir
	cmd.Env = append(append(baseProcessEnv(a.hostEnv), a.env...), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logFile *os.File
	var fileOut, fileErr *lineWriter
	var outSinks, errSinks []io.Writer
	if a.logDir != "" {
		f, err := a.createTaskLog(t.runID)
		if err == nil {
			logFile = f
			mu := &sync.Mutex{}
			fileOut, fileErr = &lineWriter{mu: mu, w: f}, &lineWriter{mu: mu, w: f}
			outSinks, errSinks = append(outSinks, fileOut), append(errSinks, fileErr)
		}
	}
	var shipper *logShipper
	var shipOut, shipErr *lineWriter
	if a.logs != nil {
		shipper = newLogShipper(a.logs, a.logGroup, t.job, t.arn, a.log)
		mu := &sync.Mutex{}
		shipOut, shipErr = &lineWriter{mu: mu, w: shipper}, &lineWriter{mu: mu, w: shipper}
		outSinks, errSinks = append(outSinks, shipOut), append(errSinks, shipErr)
	}
	if len(outSinks) > 0 {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(outSinks...), io.MultiWriter(errSinks...)
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		if shipper != nil {
			shipper.Close()
		}
		a.fail(ctx, t, "CannotStartContainerError: "+err.Error())
		return
	}
	a.mu.Lock() // RunnerPID and stopAll read it from other goroutines
	t.cmd = cmd
	t.started = time.Now()
	if t.pullStopped.IsZero() { // no modelled start: the "pull" took no time
		t.pullStarted, t.pullStopped = t.started, t.started
	}
	a.mu.Unlock()
	a.log.Info("agent: task started", "run_id", t.runID, "task_arn", t.arn, "pid", cmd.Process.Pid)
	a.emit(ctx, t, "RUNNING", "RUNNING", "", "", nil)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := cmd.Wait()
		// What the job left behind (a setsid child) dies with the run,
		// before its uid can be another run's and before STOPPED.
		a.releaseUID(t)
		close(t.exited) // the process is gone; its log may still be shipping
		if shipper != nil {
			shipOut.Close()
			shipErr.Close()
			shipper.Close() // every line is in the stream before STOPPED goes out
		}
		if logFile != nil {
			fileOut.Close()
			fileErr.Close()
			logFile.Close()
		}
		code := exitCodeOf(err)
		a.mu.Lock()
		reason := t.stopReason
		a.mu.Unlock()
		stopCode := "UserInitiated"
		if reason == "" {
			stopCode, reason = "EssentialContainerExited", "Essential container in task exited"
			a.stopTask(context.WithoutCancel(ctx), t.arn, reason)
			a.mu.Lock()
			t.stopReason = reason
			a.mu.Unlock()
		}
		a.log.Info("agent: task stopped", "run_id", t.runID, "exit_code", code, "stop_code", stopCode)
		a.emit(context.WithoutCancel(ctx), t, "STOPPED", "STOPPED", stopCode, reason, &code)
	}()
}

// fail reports a task that cannot start, as ECS does for an image that
// cannot be pulled.
func (a *agent) fail(ctx context.Context, t *localTask, reason string) {
	a.releaseUID(t)
	close(t.exited)
	a.mu.Lock()
	t.stopReason = reason
	a.mu.Unlock()
	a.stopTask(ctx, t.arn, reason)
	a.log.Info("agent: task failed to start", "run_id", t.runID, "reason", reason)
	a.emit(ctx, t, "STOPPED", "STOPPED", "TaskFailedToStart", reason, nil)
}

func (a *agent) stopTask(ctx context.Context, arn, reason string) {
	if _, err := a.ecs.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(a.cluster), Task: aws.String(arn), Reason: aws.String(reason)}); err != nil {
		a.log.Warn("agent: stopping task in the emulator failed", "task_arn", arn, "error", err.Error())
	}
}

// emit delivers an "ECS Task State Change" event to the dispatcher.
func (a *agent) emit(ctx context.Context, t *localTask, last, desired, stopCode, reason string, exitCode *int) {
	a.mu.Lock()
	t.version++
	version := t.version
	a.mu.Unlock()
	container := map[string]any{"name": config.ContainerName, "lastStatus": last, "taskArn": t.arn}
	if exitCode != nil {
		container["exitCode"] = *exitCode
	}
	detail := map[string]any{
		"clusterArn": a.cluster, "taskArn": t.arn, "taskDefinitionArn": t.taskDef, "startedBy": t.runID, "lastStatus": last,
		"desiredStatus": desired, "version": version, "launchType": "FARGATE", "containers": []any{container},
	}
	a.mu.Lock()
	t.addTimes(detail)
	a.mu.Unlock()
	if stopCode != "" {
		detail["stopCode"] = stopCode
		detail["stoppedReason"] = reason
	}
	ev := map[string]any{
		"version": "0", "id": fmt.Sprintf("local-%s-%d", t.runID, version), "detail-type": "ECS Task State Change",
		"source": "aws.ecs", "account": a.account, "time": time.Now().UTC().Format(time.RFC3339),
		"region": a.region, "resources": []string{t.arn}, "detail": detail,
	}
	payload, _ := json.Marshal(ev)
	// EventBridge retries failed deliveries; so do we, briefly.
	for attempt := 0; attempt < 5; attempt++ {
		err := a.invoke(ctx, payload)
		if err == nil {
			return
		}
		a.log.Warn("agent: delivering task event failed", "run_id", t.runID, "status", last, "error", err.Error())
		if ctx.Err() != nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}

// stopAll sends SIGTERM to every runner, then SIGKILL after grace; tasks
// still starting start no runner.
func (a *agent) stopAll(grace time.Duration) {
	a.mu.Lock()
	a.closing = true
	var live []*localTask
	for _, t := range a.tasks {
		if t.cmd != nil {
			live = append(live, t)
		} else {
			t.signalStop()
		}
	}
	a.mu.Unlock()
	for _, t := range live {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, t := range live {
		select {
		case <-t.exited:
		case <-deadline:
			_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	a.wg.Wait()
}
