package trigger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// Issue 25: `--env NAME` is enough for everything. The local broker
// publishes its view as the stack does; deploy-trigger, given only an
// environments file naming the topic (no ledger table, log group or
// catalogue file), lists the jobs, checks a dry run against the deployed
// catalogue and reads the history. moto evaluates no IAM: this proves the
// discovery from the topic and what deploy-trigger makes of the view; the
// stack's tests prove the grant.
func TestLocalEnvIsEnough(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte("environments:\n  local:\n    topic_arn: "+b.TopicARN()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := envOnlyCmd(bin, b, envFile, args...)
		var stdout, stderr testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return exitCodeOf(t, cmd.Run()), stdout.String(), stderr.String()
	}

	code, out, errOut := run("jobs", "--env", "local")
	if code != 0 || !strings.Contains(out, "steps — Prints numbered lines") || !strings.Contains(out, "lines=STRING  (pattern [0-9]+; at most 256 characters; required)") || !strings.Contains(out, "sleeper") {
		t.Errorf("jobs --env local: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// The README's `--dry-run website version=bad`: refused as the broker
	// would refuse it, before anything is published.
	code, out, errOut = run("--dry-run", "--env", "local", "steps", "lines=bad")
	// The hint names the environment given (it said a literal "--env …").
	if code != 240 || !strings.Contains(errOut+out, `the broker would refuse it: job "steps", as the broker trigger-e2e declares it: parameter "lines" does not match the pattern [0-9]+ (see deploy-trigger jobs --env local for the job's parameters)`) {
		t.Errorf("--dry-run with a bad parameter: exit %d, want 240 and the broker's reason\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("--dry-run", "--env", "local", "stepz", "lines=1")
	// A typo gets the closest job's name.
	if code != 240 || !strings.Contains(errOut+out, `job "stepz" is not in the catalogue the broker trigger-e2e runs (jobs: sleeper, steps, ticker); did you mean "steps"? (see deploy-trigger jobs --env local for the jobs you may run)`) {
		t.Errorf("--dry-run of an unknown job: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("--dry-run", "--env", "local", "steps", "lines=1")
	if code != 0 || !strings.Contains(errOut+out, "it would be accepted (defaults for wait)") {
		t.Errorf("--dry-run of a good request: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// An identity the broker does not trust (the emulator's default
	// credentials, not a session of a trusted role) learns it before
	// publishing: the dry run and jobs exit 241 naming the trusted
	// principals.
	as := strangerSession(t, b)
	stranger := func(args ...string) (int, string) {
		t.Helper()
		cmd := envOnlyCmd(bin, b, envFile, args...)
		cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID="+as.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+as.SecretAccessKey, "AWS_SESSION_TOKEN="+as.SessionToken)
		var stdout, stderr testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return exitCodeOf(t, cmd.Run()), stdout.String() + stderr.String()
	}
	if code, out := stranger("--dry-run", "--env", "local", "steps", "lines=1"); code != 241 || !strings.Contains(out, "the broker would refuse it: you (") || !strings.Contains(out, "not one of this broker's trusted principals (arn:aws:iam::111111111111:role/ci)") {
		t.Errorf("--dry-run as an untrusted identity: exit %d, want 241 naming the trusted principals\n%s", code, out)
	}
	if code, out := stranger("jobs", "--env", "local"); code != 241 || !strings.Contains(out, "may run none of the 3 jobs of broker trigger-e2e") {
		t.Errorf("jobs as an untrusted identity: exit %d, want 241\n%s", code, out)
	}
	// A topic without a published view (a broker deployed before it): said
	// so, with the by-hand flags.
	parts := strings.Split(b.TopicARN(), ":")
	code, out, errOut = run("jobs", "--topic-arn", strings.Join(append(parts[:5], "no-such-broker"), ":"))
	if code != 240 || !strings.Contains(errOut, "publishes no view (table arn:aws:dynamodb:"+parts[3]+":"+parts[4]+":table/no-such-broker-view)") {
		t.Errorf("jobs of a broker without a view: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// A run, then the history commands with --env alone.
	code, out, errOut = run("--env", "local", "--output", "plain", "steps", "lines=1")
	if code != 3 {
		t.Fatalf("the run: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("runs", "--env", "local", "--output", "json")
	if code != 0 || !strings.Contains(out, `"job":"steps"`) {
		t.Fatalf("runs --env local: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	runID := between(out, `"run_id":"`, `"`)
	code, out, errOut = run("logs", "--env", "local", runID)
	if code != 0 || !strings.Contains(out, "1") {
		t.Errorf("logs --env local %s: exit %d\nstdout:\n%s\nstderr:\n%s", runID, code, out, errOut)
	}
	code, out, errOut = run("show", "--env", "local", "--output", "json", runID)
	if code != 0 || !strings.Contains(out, `"exit_code":3`) || !strings.Contains(out, `"exit":{`) {
		t.Errorf("show --env local %s (the exit record from the run log the view names): exit %d\nstdout:\n%s\nstderr:\n%s", runID, code, out, errOut)
	}
}

// strangerSession is a session, made in the emulator, of a role in an
// account the broker does not trust.
func strangerSession(t *testing.T, b *localbroker.Broker) aws.Credentials {
	t.Helper()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(b.Server.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAEXAMPLEDEFAULT01", "default", "")}
	out, err := sts.NewFromConfig(cfg).AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::999999999999:role/stranger"), RoleSessionName: aws.String("stranger-1")})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	creds := aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey), SessionToken: aws.ToString(c.SessionToken)}
	// Made at the emulator directly: local mode's endpoint, which checks
	// every signature, is told the session's keys.
	b.Trust(creds)
	return creds
}

// envOnlyCmd is deploy-trigger with the local broker's endpoint and
// credentials and the environments file, and nothing else: no topic, ledger
// table or run log group variable.
func envOnlyCmd(bin string, b *localbroker.Broker, envFile string, args ...string) *exec.Cmd {
	cmd := triggerCmd(bin, b, args...)
	var env []string
	for _, kv := range cmd.Env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "DEPLOY_TRIGGER_TOPIC_ARN", "DEPLOY_TRIGGER_LEDGER_TABLE", "DEPLOY_TRIGGER_RUN_LOG_GROUP":
		default:
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "DEPLOY_TRIGGER_ENVIRONMENTS="+envFile)
	return cmd
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

// The dry run of a governed job (examples/governance: concurrency 1 in a
// group, one approver) says it needs approval, and who holds its slots:
// free at first, then, with a run awaiting approval, that it would wait
// behind that run. Local mode has no IAM: the caller reads the history
// with its own session here; in AWS only a viewer (through the reader
// role) can, and anyone else is told it was not read.
func TestLocalDryRunOfAGovernedJob(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	var log testutil.SyncBuffer
	b, err := localbroker.Start(t.Context(), localbroker.Options{ConfigPath: "../../examples/governance/broker.yaml",
		RunnerPath: filepath.Join(bin, "deploy-runner"), Log: &log, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	envFile := filepath.Join(t.TempDir(), "environments.yaml")
	if err := os.WriteFile(envFile, []byte("environments:\n  local:\n    topic_arn: "+b.TopicARN()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dryRun := func() (int, string) {
		cmd := envOnlyCmd(bin, b, envFile, "--dry-run", "--env", "local", "migrate-production", "steps=2")
		var out testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		return exitCodeOf(t, cmd.Run()), out.String()
	}
	cmd := envOnlyCmd(bin, b, envFile, "jobs", "--env", "local")
	var jobs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &jobs, &jobs
	if code := exitCodeOf(t, cmd.Run()); code != 0 || !strings.Contains(jobs.String(), "migrate-production — Apply database migrations to production. (timeout 30m0s)\n  needs approval by one of arn:aws:iam::111111111111:role/release-manager\n  1 slot(s) of concurrency group production-db; when all are held: queue\n") {
		t.Errorf("jobs --env local: exit %d\n%s", code, jobs.String())
	}
	code, out := dryRun()
	if code != 0 || !strings.Contains(out, "it needs approval by one of arn:aws:iam::111111111111:role/release-manager") ||
		!strings.Contains(out, "it takes one of the 1 slot(s) of concurrency group production-db: when all are held it waits behind the runs that hold them") || !strings.Contains(out, "it would find a slot free now (0 of 1 held)") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}

	// A run that awaits approval (its trigger waits; interrupted at the end).
	first := envOnlyCmd(bin, b, envFile, "--env", "local", "--output", "plain", "migrate-production", "steps=1")
	var firstOut testutil.SyncBuffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Signal(os.Interrupt); _ = first.Wait() })
	waitFor(t, func() bool { return strings.Contains(firstOut.String(), "awaiting approval") })
	runID := between(firstOut.String(), "run ", " requested")
	code, out = dryRun()
	if code != 0 || !strings.Contains(out, "would wait behind run "+runID+" (migrate-production, awaiting-approval)") {
		t.Errorf("dry run with run %s awaiting approval: exit %d\n%s", runID, code, out)
	}
	// A decision needs only --env too: the requester cancels its run.
	cancel := envOnlyCmd(bin, b, envFile, "cancel", "--env", "local", "--yes", runID)
	var cancelOut testutil.SyncBuffer
	cancel.Stdout, cancel.Stderr = &cancelOut, &cancelOut
	if code := exitCodeOf(t, cancel.Run()); code != 0 {
		t.Errorf("cancel --env local %s: exit %d\n%s", runID, code, cancelOut.String())
	}
}
