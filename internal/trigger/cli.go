package trigger

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// CLI is every flag and environment variable of deploy-trigger, in one
// declaration: kong reads the flags, the env tags and the defaults from it,
// and --help prints it.
type CLI struct {
	Job    string   `arg:"" optional:"" help:"Catalogue job to run, e.g. website; or a command: ${commands} (see Commands above)."`
	Params []string `arg:"" optional:"" name:"key=value" help:"Job parameters, each as name=value (the value may contain '=' or be empty), or name@env=VAR to take a secret value from the environment variable VAR."`

	Env          string `short:"e" name:"env" env:"DEPLOY_TRIGGER_ENV" placeholder:"NAME" group:"Target" help:"Named environment from the environments file (topic, account, credentials, confirmation)."`
	Environments string `name:"environments" env:"DEPLOY_TRIGGER_ENVIRONMENTS" placeholder:"FILE" group:"Target" help:"Environments file. Default: ./.deploy-trigger.yaml, then ~/.config/deploy-trigger/environments.yaml."`
	TopicARN     string `name:"topic-arn" env:"DEPLOY_TRIGGER_TOPIC_ARN" placeholder:"ARN" group:"Target" help:"Broker topic ARN; it decides the region, target account and run queue names."`
	Account      string `name:"expect-account" env:"DEPLOY_TRIGGER_EXPECT_ACCOUNT" placeholder:"ID" group:"Target" help:"Target account id the run must land in; stop and cancel otherwise."`
	Yes          bool   `short:"y" name:"yes" env:"DEPLOY_TRIGGER_YES" group:"Target" help:"Do not ask for confirmation, even where the environment asks for it."`

	Profile     string `name:"profile" env:"DEPLOY_TRIGGER_PROFILE" placeholder:"NAME" group:"Credentials" help:"AWS shared-config profile (role_arn and mfa_serial work; the MFA code is asked on the terminal). Default: the SDK chain."`
	RoleARN     string `name:"role-arn" env:"DEPLOY_TRIGGER_ROLE_ARN" placeholder:"ARN" group:"Credentials" help:"Trigger role to assume before publishing."`
	ExternalID  string `name:"external-id" env:"DEPLOY_TRIGGER_EXTERNAL_ID" placeholder:"ID" group:"Credentials" help:"External id for --role-arn."`
	SessionName string `name:"session-name" env:"DEPLOY_TRIGGER_SESSION_NAME" placeholder:"NAME" group:"Credentials" help:"Role session name. Default: names the CI run, e.g. gha-org-app-123456."`

	Output     string `name:"output" short:"o" enum:"auto,plain,terminal,github,json" default:"auto" env:"DEPLOY_TRIGGER_OUTPUT" group:"Output" help:"Output mode: auto, plain, terminal, github or json. Auto picks github when GITHUB_ACTIONS=true, terminal on a terminal, else plain."`
	Color      string `name:"color" default:"auto" env:"DEPLOY_TRIGGER_COLOR" placeholder:"WHEN" group:"Output" help:"Colours, the job's and deploy-trigger's: never, auto (on a terminal or in GitHub, unless NO_COLOR is set; removed in plain mode) or always (kept in every mode, NO_COLOR or not). --color alone means always."`
	Timestamps bool   `name:"timestamps" env:"DEPLOY_TRIGGER_TIMESTAMPS" group:"Output" help:"Prefix each line with the time the job wrote it (plain, terminal and github modes; json lines carry it always)."`
	ResultFile string `name:"result-file" env:"DEPLOY_TRIGGER_RESULT_FILE" placeholder:"FILE" group:"Output" help:"Also write the run's result (run id, outcome, exit code, task ARN…) as one JSON object to FILE, whatever the output mode."`

	StartTimeout     time.Duration `name:"start-timeout" default:"10m" env:"DEPLOY_TRIGGER_START_TIMEOUT" group:"Timing" help:"Give up when the job has not started within this time."`
	QueueTimeout     time.Duration `name:"queue-timeout" default:"2m" env:"DEPLOY_TRIGGER_QUEUE_TIMEOUT" group:"Timing" help:"Give up (exit 246) when the broker has not answered at all within this time: no run queue means it refused the request's proof of identity, or is older than this deploy-trigger, or is failing. 0: wait for --start-timeout."`
	Timeout          time.Duration `name:"timeout" default:"0" env:"DEPLOY_TRIGGER_TIMEOUT" group:"Timing" help:"Give up (and cancel) after this long in all. 0: the job's own catalogue timeout plus 5m."`
	MissedHeartbeats int           `name:"missed-heartbeats" default:"0" env:"DEPLOY_TRIGGER_MISSED_HEARTBEATS" group:"Timing" help:"Declare the runner lost after this many heartbeat intervals of silence. 0: 4 intervals, but never less than 3m, which outlasts the runner's retries of a failing send."`
	CancelGrace      time.Duration `name:"cancel-grace" default:"2m" env:"DEPLOY_TRIGGER_CANCEL_GRACE" group:"Timing" help:"After Ctrl-C, wait this long for the job to stop and report."`
	RequestTTL       time.Duration `name:"request-ttl" default:"5m" env:"DEPLOY_TRIGGER_REQUEST_TTL" group:"Timing" help:"The run request expires this long after it is sent (the broker refuses more than 15m by default)."`

	Secret    []string `name:"secret" env:"DEPLOY_TRIGGER_SECRET_PARAMS" sep:"," placeholder:"NAME" group:"Parameters" help:"Treat this parameter as secret (repeatable): its value is never printed or written, and masked in GitHub Actions. Also secret: name@env=VAR parameters, those the --catalogue marks secret, and names containing token, secret, password, credential, api_key…"`
	Catalogue string   `name:"catalogue" env:"DEPLOY_TRIGGER_CATALOGUE" placeholder:"FILE" group:"Parameters" help:"A broker configuration file (job catalogue), instead of the catalogue the deployed broker publishes: deploy-trigger jobs lists its jobs; a run or --dry-run is checked against it before publishing, exactly as the broker checks it; its secret parameters are never printed."`

	IdempotencyKey string `name:"idempotency-key" env:"DEPLOY_TRIGGER_IDEMPOTENCY_KEY" placeholder:"KEY" help:"Name the run (e.g. from the CI run's id) so that deploy-trigger attach --key KEY finds it again."`

	Detach bool `name:"detach" env:"DEPLOY_TRIGGER_DETACH" help:"Publish, wait until the broker has taken the run (accepted, queued or awaiting approval), print its run id on stdout and exit 0; the run goes on (deploy-trigger attach RUN_ID follows it)."`

	LedgerTable   string `name:"ledger-table" env:"DEPLOY_TRIGGER_LEDGER_TABLE" placeholder:"NAME" group:"Decisions" help:"approve, reject, cancel: the run ledger table (the stack's LedgerTable output), where they read the run and the broker's answer; by default the one the broker's published view names (--env is enough)."`
	ReaderRoleARN string `name:"reader-role-arn" env:"DEPLOY_TRIGGER_READER_ROLE_ARN" placeholder:"ARN" group:"Decisions" help:"approve, reject, cancel: the role to read the ledger with (the stack's ReaderRole output, for the catalogue's viewers), assumed from your own credentials."`

	DryRun  bool             `name:"dry-run" env:"DEPLOY_TRIGGER_DRY_RUN" help:"Validate, show the request, the caller identity and the target; publish nothing."`
	Version kong.VersionFlag `name:"version" help:"Print the version and exit."`
}

// helpDescription is --help's text: the commands come from their one
// declaration (protocol.TriggerCommands, commands.go).
var helpDescription = helpIntro + commandsHelp() + helpExamples

const helpIntro = `Run a deploy-broker catalogue job in its target account and stream its output.

deploy-trigger publishes a run request to the broker topic, prints the job's
output as it runs, and exits with the job's exit code, or with one of the
reserved codes 240-248 when the broker could not run it (see docs/TRIGGER.md).

Commands (where a job name would stand; no job may be called so):

`

const helpExamples = `
Examples:

  # Deploy to the "production" environment of .deploy-trigger.yaml
  deploy-trigger --env production website version=1.4.2

  # Topic from the environment, as in a CI job
  DEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:eu-west-1:123456789012:deploy-broker \
    deploy-trigger website version=1.4.2 colour=green

  # A secret from an environment variable: never on the command line, never printed
  deploy-trigger --env production rotate-key token@env=NEW_TOKEN

  # The deployed jobs you may run and their parameters (the broker publishes them)
  deploy-trigger jobs --env production

  # A configuration file's jobs and parameters, before it is deployed
  deploy-trigger jobs --catalogue examples/broker.yaml

  # Assume a trigger role first, naming the CI run in the session
  deploy-trigger --role-arn arn:aws:iam::111122223333:role/ci-trigger \
    --external-id acme --env staging migrate-db

  # Check everything (against the deployed catalogue) without publishing
  deploy-trigger --dry-run --env production website version=1.4.2

  # One JSON record a line, for scripts
  deploy-trigger -o json --env staging smoke-test
`

// errHelpShown reports that --help or --version printed and the command
// should end successfully.
var errHelpShown = errors.New("help shown")

type exitPanic int

// parseCLI parses args (and the DEPLOY_TRIGGER_* variables from getenv) into
// a CLI. --help and --version print to stdout and return errHelpShown.
func parseCLI(args []string, getenv func(string) string, stdout, stderr io.Writer) (cli *CLI, err error) {
	cli = &CLI{}
	parser, err := kong.New(cli,
		kong.Name("deploy-trigger"),
		kong.Description(helpDescription),
		kong.Writers(stdout, stderr),
		cliVars(),
		kong.Exit(func(code int) { panic(exitPanic(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, WrapUpperBound: 100}),
		kong.Resolvers(envResolver(getenv)),
	)
	if err != nil {
		return nil, fmt.Errorf("building the command line parser: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitPanic); ok {
				cli, err = nil, errHelpShown
				return
			}
			panic(r)
		}
	}()
	if _, err := parser.Parse(colorFlagAlone(args)); err != nil {
		return nil, err
	}
	return cli, nil
}

// cliVars are the variables CLI's help tags use.
func cliVars() kong.Vars {
	return kong.Vars{"version": versionLine(), "commands": strings.Join(ReservedCommands, ", "),
		"outcomes": strings.Join(ledger.Outcomes(), ", ")} // runs --outcome

}

// colorFlagAlone reads a bare --color (once a switch) as --color=always.
func colorFlagAlone(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if a == "--color" {
			out[i] = "--color=always"
		}
	}
	return out
}

// envResolver reads flags' env tags through getenv rather than the process
// environment, so tests and embedders control it.
func envResolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range flag.Envs {
			if v := getenv(name); v != "" {
				return v, nil
			}
		}
		return nil, nil
	})
}

// validate checks combinations of flags that kong cannot.
func (c *CLI) validate() error {
	if c.Job == "" {
		return errors.New("no job given: name the catalogue job to run, e.g. deploy-trigger website version=1.4.2 (see --help)")
	}
	switch c.Color {
	case "true", "1", "yes":
		c.Color = "always"
	case "false", "0", "no", "":
		c.Color = "auto"
	case "never", "auto", "always":
	default:
		return fmt.Errorf("--color must be never, auto or always, not %q", short(c.Color, 40))
	}
	if c.StartTimeout <= 0 {
		return errors.New("--start-timeout must be positive, e.g. 10m")
	}
	if c.QueueTimeout < 0 {
		return errors.New("--queue-timeout must not be negative (0 waits for the start timeout instead)")
	}
	if c.Timeout < 0 {
		return errors.New("--timeout must not be negative (0 means the job's own timeout plus 5m)")
	}
	if c.CancelGrace <= 0 {
		return errors.New("--cancel-grace must be positive, e.g. 2m")
	}
	if c.RequestTTL < 10*time.Second || c.RequestTTL > time.Hour {
		return errors.New("--request-ttl must be between 10s and 1h (the broker refuses more than 15m by default)")
	}
	if c.MissedHeartbeats != 0 && c.MissedHeartbeats < 2 {
		return errors.New("--missed-heartbeats must be at least 2, or 0 for the default (4 intervals, at least 3m)")
	}
	if c.ExternalID != "" && c.RoleARN == "" {
		return errors.New("--external-id needs --role-arn: the external id belongs to the role being assumed")
	}
	if c.RoleARN != "" && !strings.HasPrefix(c.RoleARN, "arn:") {
		return fmt.Errorf("--role-arn %q is not an IAM role ARN, e.g. arn:aws:iam::111122223333:role/ci-trigger", short(c.RoleARN, 80))
	}
	if c.Account != "" && !validAccountID(c.Account) {
		return fmt.Errorf("--expect-account %q is not a 12-digit AWS account id", short(c.Account, 40))
	}
	return nil
}
