package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Run history (issue 17): `deploy-trigger runs` and `deploy-trigger show
// RUN_ID` read the run ledger's history index (ledger.HistoryIndex)
// with dynamodb:Query, never Scan, so a reader needs Query on that index
// only. They are subcommands in the first argument: a catalogue job named
// like one is run with `deploy-trigger -- runs` or with a flag first.

// targetFlags are the flags of the read commands that say where the broker
// is and how to reach it: the same names and variables as a run's.
type targetFlags struct {
	Env          string `short:"e" name:"env" env:"DEPLOY_TRIGGER_ENV" placeholder:"NAME" help:"Named environment from the environments file."`
	Environments string `name:"environments" env:"DEPLOY_TRIGGER_ENVIRONMENTS" placeholder:"FILE" help:"Environments file."`
	TopicARN     string `name:"topic-arn" env:"DEPLOY_TRIGGER_TOPIC_ARN" placeholder:"ARN" help:"Broker topic ARN (decides the region and account)."`
	LedgerTable  string `name:"ledger-table" env:"DEPLOY_TRIGGER_LEDGER_TABLE" placeholder:"NAME" help:"The broker's run ledger table (the stack's LedgerTable output); by default the one the broker's published view names (--env is enough)."`
	Profile      string `name:"profile" env:"DEPLOY_TRIGGER_PROFILE" placeholder:"NAME" help:"AWS shared-config profile."`
	RoleARN      string `name:"role-arn" env:"DEPLOY_TRIGGER_READER_ROLE_ARN" placeholder:"ARN" help:"Role to assume first: the stack's reader role (ReaderRole output) for a reader in another account; by default, for a viewer, the one the broker's published view names."`
	ExternalID   string `name:"external-id" env:"DEPLOY_TRIGGER_EXTERNAL_ID" placeholder:"ID" help:"External id for --role-arn."`
	SessionName  string `name:"session-name" env:"DEPLOY_TRIGGER_SESSION_NAME" placeholder:"NAME" help:"Role session name."`
	Output       string `name:"output" short:"o" enum:"plain,json" default:"plain" env:"DEPLOY_TRIGGER_HISTORY_OUTPUT" help:"plain (a table) or json (one object a line)."`
}

type runsCLI struct {
	targetFlags
	Job       string        `name:"job" placeholder:"JOB" help:"Only runs of this job."`
	Requester string        `name:"requester" placeholder:"TEXT" help:"Only runs whose verified principal (or claimed requester) contains TEXT."`
	Outcome   string        `name:"outcome" placeholder:"OUTCOME" help:"Only runs with this outcome: ${outcomes}."`
	Since     time.Duration `name:"since" default:"168h" help:"Runs from this long ago on (by run id time)."`
	Until     time.Duration `name:"until" default:"0" help:"Runs up to this long ago."`
	Limit     int           `name:"limit" default:"20" help:"At most this many runs, newest first."`
	Key       string        `name:"key" placeholder:"KEY" help:"Only runs started with this idempotency key."`
}

type showCLI struct {
	targetFlags
	LogGroup string `name:"log-group" env:"DEPLOY_TRIGGER_RUN_LOG_GROUP" placeholder:"NAME" help:"The run log group (the stack's RunLogGroup output; by default the published view's): show adds the exit record and the job's outputs from the run log."`
	RunID    string `arg:"" name:"run-id" help:"The run id (a ULID)."`
}

// historyRun is one run as the history commands show it.
type historyRun struct {
	RunID       string `json:"run_id"`
	Job         string `json:"job"`
	Requester   string `json:"requester,omitempty"`    // claimed by the client
	RequestedBy string `json:"requested_by,omitempty"` // verified principal
	CancelledBy string `json:"cancelled_by,omitempty"` // verified principal of the cancel
	Outcome     string `json:"outcome"`
	Status      string `json:"status"`
	ExitCode    *int   `json:"exit_code,omitempty"`
	// LogExitCode: the run log's exit code, when it disagreed with ECS's
	// container exit code (ExitCode, which counts).
	LogExitCode *int              `json:"log_exit_code,omitempty"`
	RequestedAt string            `json:"requested_at,omitempty"`
	CreatedAt   string            `json:"created_at,omitempty"`
	EndedAt     string            `json:"ended_at,omitempty"`
	DurationMS  int64             `json:"duration_ms,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	TaskARN     string            `json:"task_arn,omitempty"`
	StopCode    string            `json:"stop_code,omitempty"`
	StopReason  string            `json:"stopped_reason,omitempty"`
	RejectCode  string            `json:"reject_code,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	CancelAsked string            `json:"cancel_requested_at,omitempty"`
	CancelledAt string            `json:"cancelled_at,omitempty"`
	ReleasedAt  string            `json:"released_at,omitempty"`
	Key         string            `json:"idempotency_key,omitempty"`
	// An approver's decision (a job with approvers): approved or rejected,
	// by whom (verified) and when.
	Approval   string `json:"approval,omitempty"`
	ApprovalBy string `json:"approval_by,omitempty"`
	ApprovalAt string `json:"approval_at,omitempty"`
	// From the run log's exit record (show with --log-group).
	Exit    *protocol.Exit    `json:"exit,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
	// Start is where the run's start time went (history_start.go).
	Start *startBreakdown `json:"start,omitempty"`

	item ledger.Item // as decoded, for the ledger's own rules
}

// historyAPI is the slice of DynamoDB the history commands use: Query only.
type historyAPI interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// history runs `runs` or `show`.
func (a *app) history(ctx context.Context, cmd string, args []string) error {
	if cmd == "logs" || cmd == "attach" {
		return a.runLogs(ctx, cmd, args) // cmd_logs.go
	}
	var flags *targetFlags
	var runs *runsCLI
	var show *showCLI
	var target any
	switch cmd {
	case "runs":
		runs = &runsCLI{}
		flags, target = &runs.targetFlags, runs
	default:
		show = &showCLI{}
		flags, target = &show.targetFlags, show
	}
	if err := parseSub(target, "deploy-trigger "+cmd, args, a.getenv, a.stdout, a.stderr); err != nil {
		if errors.Is(err, errHelpShown) {
			return nil
		}
		return a.historyFail(exitcode.Errorf(exitcode.Usage, "%s (see deploy-trigger %s --help)", strings.TrimRight(err.Error(), "."), cmd))
	}
	var awsCfg aws.Config
	var err error
	if show != nil {
		awsCfg, _, err = a.historyAWSLogs(ctx, flags, &show.LogGroup, false)
	} else {
		awsCfg, _, err = a.historyAWS(ctx, flags)
	}
	if err != nil {
		return a.historyFail(err)
	}
	db, table := dynamodb.NewFromConfig(awsCfg), flags.LedgerTable
	h := historyReader{db: db, table: table}
	if runs != nil {
		if runs.Limit <= 0 || runs.Since <= runs.Until {
			return a.historyFail(exitcode.Errorf(exitcode.Usage, "--limit must be positive and --since longer ago than --until"))
		}
		now := a.now()
		list, err := h.list(ctx, runs, now.Add(-runs.Since), now.Add(-runs.Until))
		if err != nil {
			return a.historyFail(err)
		}
		printRuns(a.stdout, flags.Output, list)
		return nil
	}
	if err := protocol.ValidateRunID(show.RunID); err != nil {
		return a.historyFail(exitcode.New(exitcode.Usage, err))
	}
	r, ok, err := h.get(ctx, show.RunID)
	if err != nil {
		return a.historyFail(err)
	}
	if !ok {
		return a.historyFail(notInLedger(show.RunID, table))
	}
	if show.LogGroup != "" && r.TaskARN != "" {
		x, err := lastExit(ctx, cloudwatchlogs.NewFromConfig(awsCfg), show.LogGroup, r)
		if err != nil {
			return a.historyFail(err)
		}
		if x != nil {
			r.Exit, r.Outputs = x, outputsMap(x.Outputs)
			r.Exit.Outputs = nil
		}
	}
	printRun(a.stdout, flags.Output, r)
	return nil
}

func (a *app) historyFail(err error) error {
	fmt.Fprintf(a.stderr, "deploy-trigger: %v\n", err)
	return err
}

// parseSub parses a subcommand's flags with kong.
func parseSub(target any, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	parser, err := kong.New(target, kong.Name(name), kong.Writers(stdout, stderr), cliVars(),
		kong.Exit(func(code int) { panic(exitPanic(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, WrapUpperBound: 100}),
		kong.Resolvers(envResolver(getenv)))
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitPanic); ok {
				err = errHelpShown
				return
			}
			panic(r)
		}
	}()
	_, err = parser.Parse(args)
	return err
}

// historyAWS resolves the target like a run does (environment, topic,
// credentials) and returns the AWS configuration in the topic's region.
// What the flags leave out (the ledger table, the run log group when
// logGroup is not nil, the reader role) comes from the broker's published
// view (discovery.go); needLog: the command cannot do without the log group.
func (a *app) historyAWS(ctx context.Context, f *targetFlags) (aws.Config, *Config, error) {
	return a.historyAWSLogs(ctx, f, nil, false)
}

// historyAWSLogs is historyAWS that also fills *logGroup from the view when
// it is empty (needLog: the command cannot do without it).
func (a *app) historyAWSLogs(ctx context.Context, f *targetFlags, logGroup *string, needLog bool) (aws.Config, *Config, error) {
	cli := &CLI{Job: "-", Env: f.Env, Environments: f.Environments, TopicARN: f.TopicARN, Profile: f.Profile,
		RoleARN: f.RoleARN, ExternalID: f.ExternalID, SessionName: f.SessionName,
		StartTimeout: time.Minute, CancelGrace: time.Minute, RequestTTL: 5 * time.Minute}
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return aws.Config{}, nil, exitcode.New(exitcode.Usage, err)
	}
	requester := requesterFromEnv(a.getenv, a.hostname)
	awsCfg, err := a.awsConfig(ctx, cfg, requester)
	if err != nil {
		return aws.Config{}, nil, err
	}
	if err := reachFirst(ctx, newClients(awsCfg)); err != nil { // discovery.go
		return aws.Config{}, nil, err
	}
	if err := a.historyTargets(ctx, &awsCfg, cfg, f, logGroup, needLog); err != nil {
		return aws.Config{}, nil, err
	}
	return awsCfg, cfg, nil
}
