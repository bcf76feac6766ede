package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Run history (issue 17): `deploy-trigger runs` and `deploy-trigger show
// RUN_ID` read the run ledger's history index (protocol.LedgerHistoryIndex)
// with dynamodb:Query, never Scan, so a reader needs Query on that index
// only. They are subcommands in the first argument: a catalogue job named
// like one is run with `deploy-trigger -- runs` or with a flag first.

// historyCommands are the subcommands handled here, before the run CLI.
var historyCommands = map[string]bool{"runs": true, "show": true, "logs": true, "attach": true}

// targetFlags are the flags of the read commands that say where the broker
// is and how to reach it: the same names and variables as a run's.
type targetFlags struct {
	Env          string `short:"e" name:"env" env:"DEPLOY_TRIGGER_ENV" placeholder:"NAME" help:"Named environment from the environments file."`
	Environments string `name:"environments" env:"DEPLOY_TRIGGER_ENVIRONMENTS" placeholder:"FILE" help:"Environments file."`
	TopicARN     string `name:"topic-arn" env:"DEPLOY_TRIGGER_TOPIC_ARN" placeholder:"ARN" help:"Broker topic ARN (decides the region and account)."`
	LedgerTable  string `name:"ledger-table" env:"DEPLOY_TRIGGER_LEDGER_TABLE" placeholder:"NAME" help:"The broker's run ledger table (the stack's LedgerTable output)."`
	Profile      string `name:"profile" env:"DEPLOY_TRIGGER_PROFILE" placeholder:"NAME" help:"AWS shared-config profile."`
	RoleARN      string `name:"role-arn" env:"DEPLOY_TRIGGER_READER_ROLE_ARN" placeholder:"ARN" help:"Role to assume first: the stack's reader role (ReaderRole output) for a reader in another account."`
	ExternalID   string `name:"external-id" env:"DEPLOY_TRIGGER_EXTERNAL_ID" placeholder:"ID" help:"External id for --role-arn."`
	SessionName  string `name:"session-name" env:"DEPLOY_TRIGGER_SESSION_NAME" placeholder:"NAME" help:"Role session name."`
	Output       string `name:"output" short:"o" enum:"plain,json" default:"plain" env:"DEPLOY_TRIGGER_HISTORY_OUTPUT" help:"plain (a table) or json (one object a line)."`
}

type runsCLI struct {
	targetFlags
	Job       string        `name:"job" placeholder:"JOB" help:"Only runs of this job."`
	Requester string        `name:"requester" placeholder:"TEXT" help:"Only runs whose verified principal (or claimed requester) contains TEXT."`
	Outcome   string        `name:"outcome" placeholder:"OUTCOME" help:"Only runs with this outcome: succeeded, failed, running, rejected, cancelled, abandoned, stopped."`
	Since     time.Duration `name:"since" default:"168h" help:"Runs from this long ago on (by run id time)."`
	Until     time.Duration `name:"until" default:"0" help:"Runs up to this long ago."`
	Limit     int           `name:"limit" default:"20" help:"At most this many runs, newest first."`
	Key       string        `name:"key" placeholder:"KEY" help:"Only runs started with this idempotency key."`
}

type showCLI struct {
	targetFlags
	LogGroup string `name:"log-group" env:"DEPLOY_TRIGGER_RUN_LOG_GROUP" placeholder:"NAME" help:"The run log group (the stack's RunLogGroup output): show adds the exit record and the job's outputs from the run log."`
	RunID    string `arg:"" name:"run-id" help:"The run id (a ULID)."`
}

// historyRun is one run as the history commands show it.
type historyRun struct {
	RunID       string            `json:"run_id"`
	Job         string            `json:"job"`
	Requester   string            `json:"requester,omitempty"`    // claimed by the client
	RequestedBy string            `json:"requested_by,omitempty"` // verified principal
	CancelledBy string            `json:"cancelled_by,omitempty"` // verified principal of the cancel
	Outcome     string            `json:"outcome"`
	Status      string            `json:"status"`
	ExitCode    *int              `json:"exit_code,omitempty"`
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
	// From the run log's exit record (show with --log-group).
	Exit    *protocol.Exit    `json:"exit,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
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
	awsCfg, _, err := a.historyAWS(ctx, flags)
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
		return a.historyFail(exitcode.Errorf(exitcode.Rejected, "run %s is not in the run ledger of table %s (a wrong broker, a run older than the ledger's retention, or a run id never published)", show.RunID, table))
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
	parser, err := kong.New(target, kong.Name(name), kong.Writers(stdout, stderr),
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
func (a *app) historyAWS(ctx context.Context, f *targetFlags) (aws.Config, *Config, error) {
	cli := &CLI{Job: "-", Env: f.Env, Environments: f.Environments, TopicARN: f.TopicARN, Profile: f.Profile,
		RoleARN: f.RoleARN, ExternalID: f.ExternalID, SessionName: f.SessionName,
		StartTimeout: time.Minute, CancelGrace: time.Minute, RequestTTL: 5 * time.Minute}
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return aws.Config{}, nil, exitcode.New(exitcode.Usage, err)
	}
	if f.LedgerTable == "" {
		return aws.Config{}, nil, exitcode.Errorf(exitcode.Usage, "no run ledger table: pass --ledger-table NAME (the stack's LedgerTable output) or set DEPLOY_TRIGGER_LEDGER_TABLE")
	}
	requester := requesterFromEnv(a.getenv, a.hostname)
	profile := firstNonEmpty(cfg.Profile, a.getenv("AWS_PROFILE"), "default")
	awsCfg, err := loadAWS(ctx, cfg, a.getenv, requester, mfaPrompter(a.in, a.stdinTTY, a.stderr, profile))
	if err != nil {
		return aws.Config{}, nil, exitcode.New(exitcode.Usage, err)
	}
	return awsCfg, cfg, nil
}

type historyReader struct {
	db    historyAPI
	table string
}

// runIDBound is the smallest (or, with high, the largest) run id of time t.
func runIDBound(t time.Time, high bool) string {
	fill := byte(0)
	if high {
		fill = 0xff
	}
	return ulid.MustNew(ulid.Timestamp(t), bytes.NewReader(bytes.Repeat([]byte{fill}, 10))).String()
}

// query runs one Query of the history index and names the permission when
// it is refused.
func (h historyReader) query(ctx context.Context, in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
	in.TableName, in.IndexName = aws.String(h.table), aws.String(protocol.LedgerHistoryIndex)
	out, err := h.db.Query(ctx, in)
	if err == nil {
		return out, nil
	}
	if isAccessDenied(err) {
		return nil, exitcode.Errorf(exitcode.Broker, "reading the run history needs dynamodb:Query on index %s of table %s (granted to the catalogue's viewers by the stack's reader role): %v", protocol.LedgerHistoryIndex, h.table, err)
	}
	if isNoCredentials(err) || isExpiredCredentials(err) || isInvalidCredentials(err) {
		return nil, exitcode.Errorf(exitcode.Broker, "no valid AWS credentials to read the run history: %v", err)
	}
	return nil, exitcode.Errorf(exitcode.Broker, "querying the run history (table %s, index %s): %v", h.table, protocol.LedgerHistoryIndex, err)
}

// list returns the runs between from and to (by run id time), newest first,
// that pass the filters, at most c.Limit of them. Filters apply on the
// server (a FilterExpression); the pages it reads are the key range's.
func (h historyReader) list(ctx context.Context, c *runsCLI, from, to time.Time) ([]historyRun, error) {
	names := map[string]string{"#h": protocol.LedgerHistory, "#id": protocol.LedgerRunID}
	values := map[string]dbtypes.AttributeValue{
		":h":  &dbtypes.AttributeValueMemberS{Value: protocol.LedgerHistoryValue},
		":lo": &dbtypes.AttributeValueMemberS{Value: runIDBound(from, false)},
		":hi": &dbtypes.AttributeValueMemberS{Value: runIDBound(to, true)},
	}
	var filters []string
	if c.Job != "" {
		names["#job"] = protocol.LedgerJob
		values[":job"] = &dbtypes.AttributeValueMemberS{Value: c.Job}
		filters = append(filters, "#job = :job")
	}
	if c.Key != "" {
		names["#key"] = protocol.LedgerIdempotencyKey
		values[":key"] = &dbtypes.AttributeValueMemberS{Value: c.Key}
		filters = append(filters, "#key = :key")
	}
	if c.Requester != "" {
		names["#req"], names["#rby"] = protocol.LedgerRequester, protocol.LedgerRequestedBy
		values[":req"] = &dbtypes.AttributeValueMemberS{Value: c.Requester}
		filters = append(filters, "(contains(#rby, :req) OR contains(#req, :req))")
	}
	in := &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#h = :h AND #id BETWEEN :lo AND :hi"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
	var runs []historyRun
	for {
		out, err := h.query(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, item := range out.Items {
			r := runFromItem(item)
			if c.Outcome != "" && r.Outcome != c.Outcome {
				continue
			}
			runs = append(runs, r)
			if len(runs) == c.Limit {
				return runs, nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return runs, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// get returns one run: a Query on the index's partition and run id.
func (h historyReader) get(ctx context.Context, runID string) (historyRun, bool, error) {
	out, err := h.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:   aws.String("#h = :h AND #id = :id"),
		ExpressionAttributeNames: map[string]string{"#h": protocol.LedgerHistory, "#id": protocol.LedgerRunID},
		ExpressionAttributeValues: map[string]dbtypes.AttributeValue{
			":h":  &dbtypes.AttributeValueMemberS{Value: protocol.LedgerHistoryValue},
			":id": &dbtypes.AttributeValueMemberS{Value: runID},
		},
	})
	if err != nil || len(out.Items) == 0 {
		return historyRun{}, false, err
	}
	return runFromItem(out.Items[0]), true, nil
}

// runFromItem reads a ledger item. Parameters are as the dispatcher stored
// them: secret parameters are already redacted there.
func runFromItem(a map[string]dbtypes.AttributeValue) historyRun {
	str := func(k string) string {
		if v, ok := a[k].(*dbtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	r := historyRun{RunID: str(protocol.LedgerRunID), Job: str(protocol.LedgerJob), Requester: str(protocol.LedgerRequester),
		Status: str(protocol.LedgerStatus), RequestedAt: str(protocol.LedgerRequestedAt), CreatedAt: str(protocol.LedgerCreatedAt),
		EndedAt: str(protocol.LedgerEndedAt), TaskARN: str(protocol.LedgerTaskARN), StopCode: str(protocol.LedgerStopCode),
		StopReason: str(protocol.LedgerStopReason), RejectCode: str(protocol.LedgerRejectCode), Reason: str(protocol.LedgerReason),
		CancelAsked: str(protocol.LedgerCancelAsked), CancelledAt: str(protocol.LedgerCancelledAt), ReleasedAt: str(protocol.LedgerReleasedAt),
		Key: str(protocol.LedgerIdempotencyKey), RequestedBy: str(protocol.LedgerRequestedBy), CancelledBy: str(protocol.LedgerCancelledBy)}
	if v := str(protocol.LedgerExitCode); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			r.ExitCode = &n
		}
	}
	if m, ok := a[protocol.LedgerParams].(*dbtypes.AttributeValueMemberM); ok {
		r.Params = map[string]string{}
		for k, v := range m.Value {
			if sv, ok := v.(*dbtypes.AttributeValueMemberS); ok {
				r.Params[k] = sv.Value
			}
		}
	}
	if v := str(protocol.LedgerOutputs); v != "" {
		_ = json.Unmarshal([]byte(v), &r.Outputs) // the dispatcher's copy from the run log
	}
	start, _ := time.Parse(time.RFC3339Nano, r.CreatedAt)
	end, _ := time.Parse(time.RFC3339Nano, r.EndedAt)
	if !start.IsZero() && !end.IsZero() && end.After(start) {
		r.DurationMS = end.Sub(start).Milliseconds()
	}
	r.Outcome = historyOutcome(r)
	return r
}

// historyOutcome is one word for how the run ended, from the ledger: the
// task's exit code decides between succeeded and failed.
func historyOutcome(r historyRun) string {
	switch r.Status {
	case "launching", "accepted":
		return "running"
	case "rejected", "cancelled", "abandoned":
		return r.Status
	case "stopped":
		switch {
		case r.CancelAsked != "" || r.CancelledAt != "":
			return "cancelled"
		case r.ExitCode != nil && *r.ExitCode == 0:
			return "succeeded"
		case r.ExitCode != nil:
			return "failed"
		}
		return "stopped"
	}
	return r.Status
}

func printRuns(w io.Writer, mode string, runs []historyRun) {
	if mode == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range runs {
			_ = enc.Encode(r)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN ID\tJOB\tREQUESTED BY\tSTARTED\tDURATION\tOUTCOME")
	for _, r := range runs {
		outcome := r.Outcome
		if r.ExitCode != nil && outcome == "failed" {
			outcome += fmt.Sprintf(" (%d)", *r.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.RunID, r.Job, cell(firstNonEmpty(r.RequestedBy, r.Requester), 60), shortTime(r.CreatedAt),
			durationCell(r), outcome)
	}
	_ = tw.Flush()
}

func printRun(w io.Writer, mode string, r historyRun) {
	if mode == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r)
		return
	}
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-15s %s\n", k+":", v)
		}
	}
	row("run", r.RunID)
	row("job", r.Job)
	row("requested by", r.RequestedBy)
	row("requester", r.Requester)
	row("key", r.Key)
	outcome := r.Outcome
	if r.ExitCode != nil {
		outcome += fmt.Sprintf(" (exit code %d)", *r.ExitCode)
	}
	row("outcome", outcome)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		label := ""
		if i == 0 {
			label = "parameters"
		}
		fmt.Fprintf(w, "%-15s %s=%s\n", label+map[bool]string{true: ":", false: ""}[i == 0], k, cell(r.Params[k], 200))
	}
	row("requested", r.RequestedAt)
	row("started", r.CreatedAt)
	row("ended", r.EndedAt)
	if r.DurationMS > 0 {
		row("duration", durationCell(r))
	}
	row("task", r.TaskARN)
	if r.StopCode != "" || r.StopReason != "" {
		row("stopped", strings.TrimSpace(r.StopCode+" "+r.StopReason))
	}
	if r.RejectCode != "" || r.Reason != "" {
		row("rejected", strings.TrimSpace(r.RejectCode+": "+r.Reason))
	}
	if r.Exit != nil {
		row("exit", fmt.Sprintf("%s: %s (%d lines, %d bytes)", r.Exit.Reason, r.Exit.Message, r.Exit.Lines, r.Exit.Bytes))
	}
	names := make([]string, 0, len(r.Outputs))
	for k := range r.Outputs {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		label := ""
		if i == 0 {
			label = "outputs:"
		}
		fmt.Fprintf(w, "%-15s %s=%s\n", label, k, cell(r.Outputs[k], 200))
	}
	row("cancel asked", r.CancelAsked)
	row("cancelled", r.CancelledAt)
	row("cancelled by", r.CancelledBy)
	row("released", r.ReleasedAt)
}

func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func durationCell(r historyRun) string {
	if r.DurationMS <= 0 {
		return "-"
	}
	return roundDuration(time.Duration(r.DurationMS) * time.Millisecond).String()
}

// cell makes s one short line.
func cell(s string, n int) string {
	s = strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
