package localbroker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Options configure a local broker.
type Options struct {
	// ConfigPath is the broker configuration file. Runner processes run in
	// its directory, so job commands may name scripts relative to it.
	ConfigPath string
	// RunnerPath is the runner binary the agent starts for each task.
	RunnerPath string
	// Log receives the broker's own structured log (nil discards it).
	Log io.Writer
	// TaskLogDir receives each task's output as <run id>.log, the local
	// stand-in for CloudWatch Logs ("" discards it).
	TaskLogDir string
	// FailToStart makes tasks of the named jobs fail to start with the given
	// reason, as ECS reports an image that cannot be pulled (tests, demos).
	FailToStart map[string]string
	// TaskStartDelay is the modelled Fargate cold start of each task
	// (startdelay.go): the agent reports the task PROVISIONING, then
	// PENDING (the image pull), and starts the runner only after it. Zero,
	// the default and what tests use, starts runners at once.
	TaskStartDelay time.Duration
	// PollInterval is how often the agent looks at the cluster (default 50ms).
	PollInterval time.Duration
	// SweepInterval is how often the sweep runs (default 1m; <0 disables it).
	SweepInterval time.Duration
	// Clock replaces time.Now in the dispatcher (tests).
	Clock func() time.Time
	// Endpoint, when set, is given the emulator's URL and returns the
	// endpoint the broker's own clients and the runners use instead, e.g.
	// a fault-injecting proxy in front of it (reliability tests).
	Endpoint func(motoURL string) (string, error)
	// Recorder, when set, records every AWS call the components make after
	// provisioning, with who made it (record.go; the IAM evaluation test).
	Recorder *Recorder
	// Environ is the environment runner processes take PATH, HOME, TMPDIR
	// and the locale from, as a container image would provide them; nil
	// means the process's own (os.Environ()).
	Environ []string
}

// Broker is a running local broker.
type Broker struct {
	Server    *moto.Server
	Resources *Resources
	Config    *config.Config
	// Identity is who Env's credentials belong to: a session of a trusted
	// role assumed in the emulator (nil: no configured principal could be
	// made, and Env carries the emulator's default credentials, which the
	// broker does not trust).
	Identity *Identity

	shim     *accountShim // deploy-trigger's endpoint (see accountShim)
	recorder *http.Server // the recording proxy (Options.Recorder)
	rec      *Recorder
	invoke   invoker // the dispatcher, as Lambda calls it (Sweep)

	cancel context.CancelFunc
	agent  *agent
	wg     sync.WaitGroup
	once   sync.Once
}

// invoker calls the dispatcher exactly as Lambda does: a JSON payload
// through lambda.NewHandler.
type invoker func(ctx context.Context, payload []byte) error

// Start starts moto, provisions the broker and runs the SNS loop, the agent
// and the sweep until Close.
func Start(ctx context.Context, o Options) (*Broker, error) {
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.RunnerPath); err != nil {
		return nil, fmt.Errorf("runner binary: %w (build it with: go build -o bin/deploy-runner ./cmd/runner)", err)
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	log := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := moto.Start(ctx, nil)
	if err != nil {
		return nil, err
	}
	b := &Broker{Server: srv, Config: cfg}
	if err := b.start(ctx, o, cfg, log); err != nil {
		srv.Close()
		return nil, err
	}
	return b, nil
}

func (b *Broker) start(ctx context.Context, o Options, cfg *config.Config, log *slog.Logger) error {
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		return err
	}
	// The SDK's own warnings (a long poll cut short when the broker stops)
	// go to the broker's log, not to the terminal of the person running it.
	awsCfg.Logger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Warn("aws sdk: "+fmt.Sprintf(format, v...), "component", "sdk", "class", string(c))
	})
	res, err := Provision(ctx, awsCfg, cfg)
	if err != nil {
		return err
	}
	b.Resources = res
	runnerEnv := b.Server.Env(res.Region)
	motoURL := b.Server.URL
	if b.rec = o.Recorder; o.Recorder != nil {
		if b.recorder, motoURL, err = o.Recorder.serve(motoURL); err != nil {
			return err
		}
		awsCfg.BaseEndpoint = &motoURL
		runnerEnv = append(runnerEnv, "AWS_ENDPOINT_URL="+motoURL)
		o.Recorder.Name(dispatcherKey, "dispatcher")
		o.Recorder.Name(moto.AccessKeyID, "aws-service")
		for i, name := range cfg.JobNames() {
			o.Recorder.Name(taskKey(i), "task:"+name)
		}
	}
	if o.Endpoint != nil {
		url, err := o.Endpoint(motoURL)
		if err != nil {
			return err
		}
		awsCfg.BaseEndpoint = &url
		runnerEnv = append(runnerEnv, "AWS_ENDPOINT_URL="+url)
	}
	var opts []dispatcher.Option
	if o.Clock != nil {
		opts = append(opts, dispatcher.WithClock(o.Clock))
	}
	if b.Identity, err = chooseIdentity(ctx, awsCfg, cfg); err != nil {
		return err
	}
	if b.Identity != nil && o.Recorder != nil {
		o.Recorder.Name(b.Identity.Creds.AccessKeyID, b.Identity.ARN)
	}
	if b.Identity != nil {
		log.Info("deploy-trigger signs as a trusted principal made in the emulator", "component", "local", "principal", b.Identity.ARN, "stands_for", b.Identity.From)
	} else {
		log.Warn("no configured principal can be made in the emulator: requests signed with the default credentials will be refused", "component", "local")
	}
	// deploy-trigger's endpoint, which names the broker's account for it.
	// It verifies every request's signature (sigcheck.go), and the runners
	// (and so their jobs) call AWS through it too.
	if b.shim, err = startAccountShim(aws.ToString(awsCfg.BaseEndpoint), res.AccountID, b.endpointKeys(cfg)); err != nil {
		return err
	}
	runnerEnv = append(runnerEnv, "AWS_ENDPOINT_URL="+b.shim.URL)
	// Proofs of identity are verified against the emulator's STS, through
	// the URL deploy-trigger signs for.
	// The dispatcher signs with a key of its own, so that its calls are
	// told apart from the agent's and the SNS loop's (record.go).
	dispCfg := awsCfg.Copy()
	dispCfg.Credentials = credentials.NewStaticCredentialsProvider(dispatcherKey, componentSecret, "")
	d, err := dispatcher.Build(ctx, dispCfg, dispatcher.Settings{
		ConfigPath: o.ConfigPath, Cluster: res.ClusterARN, LedgerTable: res.LedgerTable, RunLogGroup: res.RunLogGroup,
		Subnets: res.Subnets, SecurityGroups: res.SecurityGroups, AccountID: res.AccountID, Region: res.Region,
		TaskDefinitions: res.TaskDefinitions,
		STSEndpoint:     b.shim.URL,
	}, log.With("component", "dispatcher"), opts...)
	if err != nil {
		return err
	}
	h := lambda.NewHandler(d.Handle)
	invoke := func(ctx context.Context, payload []byte) error {
		_, err := h.Invoke(ctx, payload)
		return err
	}
	b.invoke = invoke

	queueURL, subARN, err := subscribe(ctx, awsCfg, res.TopicARN, cfg.Broker.Name+"-local-sns")
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Dir(o.ConfigPath))
	if err != nil {
		return err
	}
	poll := o.PollInterval
	if poll == 0 {
		poll = 50 * time.Millisecond
	}
	b.agent = &agent{
		ecs: ecs.NewFromConfig(awsCfg), cluster: res.ClusterARN, region: res.Region, account: res.AccountID,
		runnerPath: o.RunnerPath, dir: dir, hostEnv: o.Environ, env: runnerEnv, logDir: o.TaskLogDir,
		failStart: o.FailToStart, taskEnv: taskEnvironments(cfg), poll: poll, invoke: invoke, log: log.With("component", "agent"),
		tasks: map[string]*localTask{}, logs: cloudwatchlogs.NewFromConfig(awsCfg), logGroup: res.RunLogGroup,
		startDelay: o.TaskStartDelay,
	}
	loop := &snsLoop{sqs: sqs.NewFromConfig(awsCfg), queueURL: queueURL, subARN: subARN, invoke: invoke, log: log.With("component", "sns-loop")}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.wg.Add(2)
	go func() { defer b.wg.Done(); loop.run(runCtx) }()
	go func() { defer b.wg.Done(); b.agent.run(runCtx) }()
	// The warm runners the catalogue asks for, as the stack's first sweep
	// starts them in AWS.
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if _, err := d.ReconcileWarm(runCtx); err != nil && runCtx.Err() == nil {
			log.Warn("starting warm runners failed; the sweep tries again", "error", err.Error())
		}
	}()
	sweep := o.SweepInterval
	if sweep == 0 {
		sweep = time.Minute
	}
	if sweep > 0 {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			t := time.NewTicker(sweep)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					if err := b.Sweep(runCtx); err != nil && runCtx.Err() == nil {
						log.Warn("sweep failed", "error", err.Error())
					}
				}
			}
		}()
	}
	return nil
}

// taskEnvironments is each job's static environment, as the task
// definitions Provision registers carry it.
func taskEnvironments(cfg *config.Config) map[string][]string {
	m := map[string][]string{}
	for i, name := range cfg.JobNames() {
		// Each job's tasks sign with a key of their own (record.go): the
		// task role's credentials, as ECS gives each task its role's.
		m[cfg.TaskFamily(name)] = append(m[cfg.TaskFamily(name)], "AWS_ACCESS_KEY_ID="+taskKey(i), "AWS_SECRET_ACCESS_KEY="+componentSecret, "AWS_SESSION_TOKEN=")
		// As the stack's task definitions: the runner writes the run log.
		m[cfg.TaskFamily(name)] = append(m[cfg.TaskFamily(name)], protocol.EnvLogFormat+"="+protocol.LogFormatRecords)
		for _, k := range slices.Sorted(maps.Keys(cfg.Jobs[name].Environment)) {
			m[cfg.TaskFamily(name)] = append(m[cfg.TaskFamily(name)], k+"="+cfg.Jobs[name].Environment[k])
		}
	}
	return m
}

// TopicARN is the broker topic deploy-trigger publishes to.
func (b *Broker) TopicARN() string { return b.Resources.TopicARN }

// Env is the environment deploy-trigger needs to use this broker: the
// emulator's endpoint and, when there is one, the credentials of Identity.
func (b *Broker) Env() []string {
	env := append(b.Server.Env(b.Resources.Region), "DEPLOY_TRIGGER_TOPIC_ARN="+b.Resources.TopicARN,
		"DEPLOY_TRIGGER_LEDGER_TABLE="+b.Resources.LedgerTable, "DEPLOY_TRIGGER_RUN_LOG_GROUP="+b.Resources.RunLogGroup)
	id := b.Identity
	for i, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); {
		case k == "AWS_ENDPOINT_URL" && b.shim != nil:
			env[i] = k + "=" + b.shim.URL
		case id == nil:
		case k == "AWS_ACCESS_KEY_ID":
			env[i] = k + "=" + id.Creds.AccessKeyID
		case k == "AWS_SECRET_ACCESS_KEY":
			env[i] = k + "=" + id.Creds.SecretAccessKey
		case k == "AWS_SESSION_TOKEN":
			env[i] = k + "=" + id.Creds.SessionToken
		}
	}
	return env
}

// WriteEnvFile writes Env as KEY=value lines that a shell can source
// (`set -a; . file; set +a`) or a tool can read. Empty values are left
// out (writeEnvLines): an empty AWS_PROFILE breaks the AWS CLI ("the
// config profile () could not be found"), and the access keys in the file
// win over an exported AWS_PROFILE for deploy-trigger, as for the AWS CLI.
func (b *Broker) WriteEnvFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil { // private.go
		return err
	}
	envs, err := b.writeEnvironmentsFile(filepath.Dir(path)) // environments.go
	if err != nil {
		return err
	}
	env := append(b.Env(), "DEPLOY_TRIGGER_ENVIRONMENTS="+envs)
	sort.Strings(env)
	var sb strings.Builder
	sb.WriteString("# deploy-broker local mode: the environment deploy-trigger needs.\n")
	if id := b.Identity; id != nil {
		fmt.Fprintf(&sb, "# The credentials are those of %s, a session made in the emulator\n# of the trusted principal %s: requests signed with them verify.\n", id.ARN, id.From)
	} else {
		sb.WriteString("# No configured principal could be made in the emulator: these are its default\n# credentials, which the broker does not trust (requests are refused).\n")
	}
	sb.WriteString("# Its access keys win over an exported AWS_PROFILE (as for the AWS CLI).\n")
	writeEnvLines(&sb, env)
	// The CI principal's credentials: the user's alone (private.go).
	return writePrivate(path, []byte(sb.String()))
}

// writeEnvLines writes env as KEY=value lines, leaving out empty values:
// the env file and approver.env alike.
func writeEnvLines(sb *strings.Builder, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			continue
		}
		fmt.Fprintf(sb, "%s=%s\n", k, v)
	}
}

// Close stops the runners (SIGTERM, then SIGKILL), the loops and moto.
func (b *Broker) Close() {
	b.once.Do(func() {
		if b.agent != nil {
			b.agent.stopAll(5 * time.Second)
		}
		if b.cancel != nil {
			b.cancel()
		}
		b.wg.Wait()
		if b.shim != nil {
			b.shim.Close()
		}
		if b.recorder != nil {
			_ = b.recorder.Close()
		}
		b.Server.Close()
	})
}

// RunnerPID is the process id of the runner of a run, while it runs.
func (b *Broker) RunnerPID(runID string) (int, bool) {
	b.agent.mu.Lock()
	defer b.agent.mu.Unlock()
	for _, t := range b.agent.tasks {
		if t.runID == runID && t.cmd != nil && t.cmd.Process != nil {
			select {
			case <-t.exited:
				return 0, false
			default:
				return t.cmd.Process.Pid, true
			}
		}
	}
	return 0, false
}

// Runs lists the run ids the agent has started tasks for.
func (b *Broker) Runs() []string {
	b.agent.mu.Lock()
	defer b.agent.mu.Unlock()
	var ids []string
	for _, t := range b.agent.tasks {
		ids = append(ids, t.runID)
	}
	sort.Strings(ids)
	return ids
}
