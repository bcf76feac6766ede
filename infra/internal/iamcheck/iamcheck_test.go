package iamcheck

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// What this test proves, and how: every AWS call local mode's components
// make in the scenario below (recorded by local mode's endpoint, each with
// the principal whose access key signed it) is allowed by the synthesized
// stack's policies for that principal, as AWS's own rules decide them
// (@cloud-copilot/iam-simulate: identity and resource policies, explicit
// Denies, conditions, same- and cross-account), with the implicit checks
// AWS makes behind a call; every call of iam.yaml's forbidden list is
// denied by the statement it names; every Allow statement is used by a
// call or has a reason in iam.yaml. moto evaluates no IAM: the emulator
// provides the calls, the evaluator the decisions.

var report = flag.String("report", "", "write the IAM report (docs/IAM.md) to this file")

var bins e2etest.Bins

func TestMain(m *testing.M) {
	flag.Parse()
	os.Setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
	// jsii's temporary files, and the synthesized templates of this run.
	tmp, err := os.MkdirTemp("", "deploy-broker-iamcheck-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp)
	code := 0
	if _, err := exec.LookPath("node"); err == nil && !testing.Short() {
		if bins, err = e2etest.Build(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		code = m.Run()
		os.RemoveAll(bins.Dir)
	} else {
		code = m.Run()
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// scenario is one configuration and the runs made against it.
type scenario struct {
	name, config string
	runs         [][]string // deploy-trigger arguments of each run
	// cancel is a run cancelled (Ctrl-C) once its output shows cancelAfter:
	// the dispatcher's StopTask.
	cancel      []string
	cancelAfter string
	// approved is a run that waits for an approval, which a session of
	// the job's approver role gives.
	approved []string
}

func scenarios() []scenario {
	return []scenario{
		{name: "examples/broker.yaml", config: "../../../examples/broker.yaml",
			runs: [][]string{{"website", "version=1.4.2"}}},
		{name: "examples/governance/broker.yaml", config: "../../../examples/governance/broker.yaml",
			runs:   [][]string{{"flush-cache"}, {"refresh-reporting"}, {"rebuild-preview"}},
			cancel: []string{"flush-cache"}, cancelAfter: "applying migration 1 of 1",
			approved: []string{"migrate-production", "steps=1"}},
		{name: "CI roles, cross-account principals and the run log CMK (testdata/ci-roles.yaml)", config: "testdata/ci-roles.yaml",
			runs:   [][]string{{"website", "version=1.0.0"}, {"release"}},
			cancel: []string{"slow"}, cancelAfter: "slow job started"},
	}
}

func TestIAMEvaluation(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("Node.js is not installed: the IAM evaluator (tools/iam-eval, @cloud-copilot/iam-simulate) and CDK synthesis need it")
	}
	if testing.Short() {
		t.Skip("synthesizes three stacks and runs local mode")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ToolDir, "node_modules", "@cloud-copilot", "iam-simulate")); err != nil {
		t.Fatalf("the IAM evaluator is not installed: run scripts/check-deps.sh test (or: cd %s && npm ci)", ToolDir)
	}
	list, err := LoadList("iam.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sections []Section
	for _, sc := range scenarios() {
		sc := sc
		t.Run(filepath.Base(filepath.Dir(sc.config))+"/"+filepath.Base(sc.config), func(t *testing.T) {
			sections = append(sections, runScenario(t, root, sc, list))
		})
	}
	// Written even when the test fails: the report shows what fails.
	if *report != "" {
		if err := os.WriteFile(*report, []byte(Render(sections)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runScenario(t *testing.T, root string, sc scenario, list *List) Section {
	cfg, err := config.Load(sc.config)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := Synth(root, sc.config, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stack, err := LoadStack(tpl, Names{LedgerTable: cfg.Broker.Name + "-runs", RunLogGroup: localbroker.RunLogGroupName(cfg.Broker.Name)})
	if err != nil {
		t.Fatal(err)
	}

	rec := localbroker.NewRecorder()
	b := e2etest.StartBroker(t, bins, sc.config, localbroker.Options{Recorder: rec, SweepInterval: -1})
	waitWarm(t, b, cfg)
	tr := e2etest.Trigger{Bins: bins}
	for _, args := range sc.runs {
		resFile := filepath.Join(t.TempDir(), "result.json")
		r := tr.Run(t, b, append([]string{"--result-file", resFile}, args...)...)
		if r.Code != 0 {
			t.Fatalf("deploy-trigger %v: exit %d\n%s", args, r.Code, e2etest.Tail(r.Stderr, 20))
		}
		var res struct {
			RunID string `json:"run_id"`
		}
		raw, _ := os.ReadFile(resFile)
		if err := json.Unmarshal(raw, &res); err != nil || res.RunID == "" {
			t.Fatalf("no run id in %s: %v", raw, err)
		}
		// A viewer's reads: the history, one run, its log; and the broker's
		// published view (jobs), which every trusted principal reads.
		for _, cmd := range [][]string{{"runs"}, {"show", res.RunID}, {"logs", res.RunID}, {"jobs"}} {
			if r := tr.Run(t, b, cmd...); r.Code != 0 {
				t.Fatalf("deploy-trigger %v: exit %d\n%s", cmd, r.Code, e2etest.Tail(r.Stderr, 20))
			}
		}
	}
	if sc.cancel != nil {
		cancelRun(t, b, sc.cancel, sc.cancelAfter)
	}
	if sc.approved != nil {
		approvedRun(t, b, sc.approved)
	}
	// The sweep, once (its schedule is off: the calls stay the same each run).
	if err := b.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}

	replay := NewReplay(stack)
	replay.BrokerRoles = "arn:aws:iam::" + Account + ":role" + config.RolePath(cfg.Broker.Name) + "*"
	for _, c := range rec.Calls() {
		replay.Add(c)
	}
	replay.AddByHand(cfg)
	for _, e := range replay.Errors {
		t.Errorf("recorded call not understood: %s", e)
	}
	return check(t, root, sc.name, replay, list, cfg, b.Identity.ARN)
}

// startTrigger starts deploy-trigger and waits until out (its stdout, or
// its stderr when onStderr) shows want.
func startTrigger(t *testing.T, b *localbroker.Broker, args []string, want string, onStderr bool) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(bins.Trigger, args...)
	cmd.Env = append(e2etest.CleanEnv(), b.Env()...)
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watch := &stdout
	if onStderr {
		watch = &stderr
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(watch.String(), want) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%v: no %q within 2m\n%s", args, want, e2etest.Tail(stderr.String(), 20))
		}
		time.Sleep(50 * time.Millisecond) // polls for a state, orders nothing
	}
	return cmd, &stderr
}

// approvedRun starts a run that waits for approval, approves it as a
// session of the approver role and waits for it to succeed.
func approvedRun(t *testing.T, b *localbroker.Broker, args []string) {
	t.Helper()
	cmd, stderr := startTrigger(t, b, args, "awaiting approval", true)
	m := regexp.MustCompile(`run ([0-9A-Z]{26}) requested`).FindStringSubmatch(stderr.String())
	if m == nil {
		_ = cmd.Process.Kill()
		t.Fatalf("%v: no run id:\n%s", args, stderr.String())
	}
	env, _, err := b.EnvAs(context.Background(), b.ApproverRole(), "approver")
	if err != nil {
		t.Fatal(err)
	}
	if r := (e2etest.Trigger{Bins: bins, Env: env}).Run(t, b, "approve", "--yes", m[1]); r.Code != 0 {
		_ = cmd.Process.Kill()
		t.Fatalf("approve %s: exit %d\n%s", m[1], r.Code, r.Stderr)
	}
	if ended, err := testutil.WaitOrKill(cmd, 2*time.Minute); !ended || err != nil {
		t.Fatalf("%v after approval: ended=%v %v\n%s", args, ended, err, e2etest.Tail(stderr.String(), 20))
	}
}

// cancelRun starts deploy-trigger, waits for the job's line, interrupts it
// (Ctrl-C: deploy-trigger publishes a cancel) and waits for it to end.
func cancelRun(t *testing.T, b *localbroker.Broker, args []string, after string) {
	t.Helper()
	cmd, stderr := startTrigger(t, b, args, after, false)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if ended, _ := testutil.WaitOrKill(cmd, 2*time.Minute); !ended {
		t.Fatalf("%v: deploy-trigger did not end within 2m of Ctrl-C", args)
	}
	if !strings.Contains(stderr.String(), "cancelling run") {
		t.Fatalf("%v: deploy-trigger did not cancel:\n%s", args, e2etest.Tail(stderr.String(), 20))
	}
}

// waitWarm waits until every job with warm runners has them idle, so that
// the runs take the warm path (assignment, inbox) and its calls are
// evaluated.
func waitWarm(t *testing.T, b *localbroker.Broker, cfg *config.Config) {
	t.Helper()
	awsCfg, err := b.Server.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(dynamodb.NewFromConfig(awsCfg), b.Resources.LedgerTable, time.Hour)
	for _, job := range cfg.JobNames() {
		want := cfg.Jobs[job].Warm
		for deadline := time.Now().Add(2 * time.Minute); want > 0; time.Sleep(50 * time.Millisecond) { // polling the ledger, not ordering
			p, err := l.GetWarm(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			idle := len(p.Idle())
			if idle >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s has %d idle warm runners after 2 minutes, want %d", job, idle, want)
			}
		}
	}
}
