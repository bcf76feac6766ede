package trigger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Discovery (issue 25): the broker publishes a view of itself
// (internal/brokerview) in a table named after its topic, so that the topic
// ARN — `--env NAME` — is all deploy-trigger needs: the history commands
// find the ledger table, the run log group and the reader role in it; jobs
// lists the deployed catalogue; a dry run checks the request against it.
// One dynamodb:GetItem, with the caller's own credentials.

// viewTableARN is the ARN of the view table of the broker behind topic t.
func viewTableARN(t Topic) string {
	return brokerview.TableARN(t.Partition, t.Region, t.Account, t.Name)
}

// discover reads the broker's published view.
func discover(ctx context.Context, c clients, t Topic) (*brokerview.View, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	table := viewTableARN(t)
	v, err := brokerview.Get(ctx, c.view, table)
	var nf *dbtypes.ResourceNotFoundException
	switch {
	case err == nil:
	case errors.Is(err, brokerview.ErrNotPublished) || errors.As(err, &nf) || apiCode(err) == "ResourceNotFoundException":
		return nil, exitcode.Errorf(exitcode.Usage, "the broker of topic %s publishes no view (table %s): its stack predates deploy-trigger's discovery; redeploy it, or give the locations by hand (--ledger-table, --log-group, --role-arn; --catalogue FILE for jobs and --dry-run)", t.ARN, table)
	case isAccessDenied(err):
		who := "the caller"
		if id, ierr := callerIdentity(ctx, c); ierr == nil {
			who = id
		}
		return nil, exitcode.Errorf(exitcode.Broker, "reading the broker's published view failed: access denied for %s, which needs dynamodb:GetItem on %s (the stack grants it to its trusted principals, viewers and approvers; another account's principal needs it in its own IAM policy too, see docs/INFRA.md)", who, table)
	default:
		return nil, describeAWSError(ctx, c, err, "reading the broker's published view ("+table+")", "dynamodb:GetItem on "+table)
	}
	if v.Broker != t.Name {
		return nil, exitcode.Errorf(exitcode.Broker, "the view in %s is broker %q's, not topic %s's: the table was not written by this broker's stack", table, v.Broker, t.ARN)
	}
	return v, nil
}

// reachFirst is the readers' first call (jobs, the history commands, the
// decisions' discovery), as preflight (proof.go) is a run's: one
// sts:GetCallerIdentity of two attempts, so that an endpoint nothing
// answers at, a host that does not resolve or credentials that cannot work
// are said at once in one line (firstCallError), not after the SDK's eight
// attempts at the read itself, in its raw words. Anything else is left to
// the read.
func reachFirst(ctx context.Context, c clients) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, twoAttempts)
	if mfa := mfaInterrupted(err); mfa != nil {
		return mfa.exit()
	}
	if err != nil {
		return firstCallError(ctx, c, err)
	}
	return nil
}

// whoAmI is the caller's principal, from sts:GetCallerIdentity: the
// identity the broker will verify for a request signed with the same
// credentials.
func whoAmI(ctx context.Context, c clients) (identity.Principal, error) {
	arn, err := callerIdentity(ctx, c)
	if err != nil {
		return identity.Principal{}, describeAWSError(ctx, c, err, "checking the caller identity (sts:GetCallerIdentity)", "working AWS credentials")
	}
	p, err := identity.PrincipalFromARN(arn)
	if err != nil {
		// The broker would refuse a request signed with it (241).
		return identity.Principal{}, exitcode.Errorf(exitcode.Rejected, "the caller identity %s is no principal the broker can verify (use a role or an IAM user): %v", arn, err)
	}
	return p, nil
}

// viewCatalogue is the view's jobs named in names as internal/config
// declares them, for writeJobs.
func viewCatalogue(v *brokerview.View, names []string) *config.Config {
	cat := &config.Config{Jobs: map[string]config.Job{}}
	for _, n := range names {
		j := v.Jobs[n]
		cj := j.Config()
		cj.Description, cj.Timeout = j.Description, config.Duration(j.TimeoutDuration())
		cj.Governance = config.Governance{Concurrency: j.Concurrency, OnFull: j.OnFull, ConcurrencyGroup: j.ConcurrencyGroup, Approvers: j.Approvers}
		cat.Jobs[n] = cj
	}
	return cat
}

// deployedJobs is `deploy-trigger jobs --env NAME`: the deployed catalogue's
// jobs the caller may run.
func (a *app) deployedJobs(ctx context.Context, cli *CLI) error {
	cfg, err := resolve(cli, a.getenv)
	if err != nil {
		return exitcode.New(exitcode.Usage, err)
	}
	c, err := a.awsClients(ctx, cfg, requesterFromEnv(a.getenv, a.hostname))
	if err != nil {
		return err
	}
	if err := reachFirst(ctx, c); err != nil {
		return err
	}
	v, err := discover(ctx, c, cfg.Topic)
	if err != nil {
		return err
	}
	p, err := whoAmI(ctx, c)
	if err != nil {
		return err
	}
	mine := v.RunnableJobs(p)
	if len(mine) == 0 {
		return exitcode.Errorf(exitcode.Rejected, "you (%s) may run none of the %d jobs of broker %s: %s", p.ARN, len(v.Jobs), v.Broker, notAllowedWhy(v, p))
	}
	writeJobs(a.stdout, viewCatalogue(v, mine))
	if others := len(v.Jobs) - len(mine); others > 0 {
		fmt.Fprintf(a.stderr, "deploy-trigger: %d more job(s) of broker %s are not for you (%s)\n", others, v.Broker, p.ARN)
	}
	return nil
}

// jobsCommand is the jobs command for the target cfg names, as the user
// would type it: with the --env they gave, else with no flag (the topic
// came from --topic-arn or DEPLOY_TRIGGER_TOPIC_ARN).
func jobsCommand(cfg *Config) string {
	if cfg.Env != "" {
		return "deploy-trigger jobs --env " + cfg.Env
	}
	if cfg.Source == "topic from --topic-arn" {
		return "deploy-trigger jobs --topic-arn " + cfg.TopicARN
	}
	return "deploy-trigger jobs"
}

// notAllowedWhy says why p may run nothing.
func notAllowedWhy(v *brokerview.View, p identity.Principal) string {
	if !v.Trusted(p) {
		return "you are not one of its trusted principals (" + strings.Join(v.TrustedPrincipals, ", ") + "); ask its owners to add you, or use a trusted role"
	}
	return "every job names other allowed_principals"
}

// checkDeployed is the dry run's check against the deployed catalogue, for
// the caller's verified identity: what the broker would answer, or why it
// was not checked. A refusal carries the exit code the broker's would
// (240 for the job or its parameters, as --catalogue's; 241 for an
// identity the job does not allow).
func (a *app) checkDeployed(ctx context.Context, out printer, c clients, cfg *Config) (string, error) {
	v, err := discover(ctx, c, cfg.Topic)
	if err != nil {
		return "; not checked against the broker's catalogue: " + strings.TrimPrefix(err.Error(), "reading the broker's published view failed: "), nil
	}
	// Secret parameters the broker declares are never shown, from here on.
	if j, ok := v.Jobs[cfg.Job]; ok {
		for n, p := range j.Params {
			if p.Secret {
				cfg.SecretParams[n] = true
			}
		}
		a.protect(out, cfg)
	}
	p, err := whoAmI(ctx, c)
	if err != nil {
		return "", err
	}
	verdict, err := v.Check(cfg.Job, cfg.JobParams, p)
	var bad *brokerview.ParamError
	var unknown *brokerview.UnknownJobError
	var denied *brokerview.NotAllowedError
	switch {
	case errors.As(err, &denied):
		return "", exitcode.New(exitcode.Rejected, fmt.Errorf("the broker would refuse it: %s", denied.Msg))
	case errors.As(err, &bad), errors.As(err, &unknown):
		msg := redactString(err.Error(), secretValues(cfg.JobParams, cfg.SecretParams))
		what := "the job's parameters"
		if unknown != nil {
			what = "the jobs you may run"
		}
		return "", exitcode.New(exitcode.Usage, fmt.Errorf("the broker would refuse it: %s (see %s for %s)", msg, jobsCommand(cfg), what))
	case err != nil:
		return "", exitcode.New(exitcode.Usage, err)
	}
	s := fmt.Sprintf(", and job %s, its parameters and your identity %s against the catalogue broker %s runs (its published view): it would be accepted", cfg.Job, p.ARN, v.Broker)
	defaults := []string{}
	for _, n := range sortedKeys(verdict.Params) {
		if _, given := cfg.JobParams[n]; !given {
			defaults = append(defaults, n)
		}
	}
	sort.Strings(defaults)
	if len(defaults) > 0 {
		s += " (defaults for " + strings.Join(defaults, ", ") + ")"
	}
	for _, n := range verdict.Notes {
		s += "; it " + n
	}
	if n := a.slotNote(ctx, c, v, cfg.Job, p); n != "" {
		s += "; it " + n
	}
	return s, nil
}

// historyTargets fills what the history commands need from the broker's
// view: the ledger table, the run log group (when logGroup is not nil), and,
// for a viewer without --role-arn, the reader role, assumed from the
// caller's credentials. A flag or variable given wins over the view.
// needLog says the command cannot do without the run log (logs, attach).
func (a *app) historyTargets(ctx context.Context, awsCfg *aws.Config, cfg *Config, f *targetFlags, logGroup *string, needLog bool) error {
	if f.LedgerTable != "" && (logGroup == nil || *logGroup != "" || !needLog) {
		// Given by hand: show without --log-group reads no run log, as before.
		return nil
	}
	c := newClients(*awsCfg)
	v, err := discover(ctx, c, cfg.Topic)
	if err != nil {
		return err
	}
	if f.LedgerTable == "" {
		f.LedgerTable = v.LedgerTable
	}
	if logGroup != nil && *logGroup == "" {
		*logGroup = v.RunLogGroup
	}
	if cfg.RoleARN != "" || v.ReaderRoleARN == "" {
		return nil
	}
	p, err := whoAmI(ctx, c)
	if err != nil {
		return err
	}
	if !v.Viewer(p) {
		// Not a viewer: the caller's own permissions (an administrator of
		// the broker's account may have them); a refusal names the viewers.
		return nil
	}
	*awsCfg = assumeReader(*awsCfg, v.ReaderRoleARN, f.SessionName, requesterFromEnv(a.getenv, a.hostname))
	return nil
}

// decisionTargets fills, for approve, reject and cancel, the ledger table
// from the broker's view, and the reader role when the caller is one of its
// viewers and gave none (decision.go assumes it from the caller's own
// credentials).
func (a *app) decisionTargets(ctx context.Context, cfg *Config, requester *protocol.Requester) error {
	awsCfg, err := a.awsConfig(ctx, cfg, requester)
	if err != nil {
		return err
	}
	c := newClients(awsCfg)
	if err := reachFirst(ctx, c); err != nil {
		return err
	}
	v, err := discover(ctx, c, cfg.Topic)
	if err != nil {
		return err
	}
	cfg.LedgerTable = v.LedgerTable
	if cfg.ReaderRoleARN != "" || v.ReaderRoleARN == "" {
		return nil
	}
	if p, err := whoAmI(ctx, c); err == nil && v.Viewer(p) {
		cfg.ReaderRoleARN = v.ReaderRoleARN
	}
	return nil
}

// assumeReader is cfg with the reader role's credentials, assumed from cfg's.
func assumeReader(cfg aws.Config, role, session string, req *protocol.Requester) aws.Config {
	if session == "" {
		session = sessionName(req)
	}
	p := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role, func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = session })
	cfg.Credentials = aws.NewCredentialsCache(p)
	return cfg
}
