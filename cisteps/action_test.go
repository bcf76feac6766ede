package cisteps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
	"gopkg.in/yaml.v3"
)

// actionFile is action.yml, decoded strictly: a misspelt key is an error.
type actionFile struct {
	Name        string                  `yaml:"name"`
	Description string                  `yaml:"description"`
	Author      string                  `yaml:"author"`
	Branding    map[string]string       `yaml:"branding"`
	Inputs      map[string]actionInput  `yaml:"inputs"`
	Outputs     map[string]actionOutput `yaml:"outputs"`
	Runs        struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

type actionInput struct {
	Description        string  `yaml:"description"`
	Required           bool    `yaml:"required"`
	Default            *string `yaml:"default"`
	DeprecationMessage string  `yaml:"deprecationMessage"`
}

type actionOutput struct {
	Description string `yaml:"description"`
	Value       string `yaml:"value"`
}

type actionStep struct {
	Name             string            `yaml:"name"`
	ID               string            `yaml:"id"`
	If               string            `yaml:"if"`
	Uses             string            `yaml:"uses"`
	With             map[string]string `yaml:"with"`
	Shell            string            `yaml:"shell"`
	Run              string            `yaml:"run"`
	Env              map[string]string `yaml:"env"`
	WorkingDirectory string            `yaml:"working-directory"`
	ContinueOnError  string            `yaml:"continue-on-error"`
}

// label names a step in failure messages.
func (s actionStep) label() string {
	if s.ID != "" {
		return "step " + s.ID
	}
	return fmt.Sprintf("step %q", s.Name)
}

// expressions are the step's ${{ }} expressions (and its if:, which is an
// expression even without the braces), with where each one is.
func (s actionStep) expressions() map[string][]string {
	out := map[string][]string{}
	add := func(where, text string) {
		out[where] = append(out[where], exprsIn(text)...)
	}
	if s.If != "" {
		out["if"] = append(out["if"], strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s.If), "${{"), "}}"))
	}
	add("uses", s.Uses)
	add("run", s.Run)
	add("working-directory", s.WorkingDirectory)
	for k, v := range s.With {
		add("with."+k, v)
	}
	for k, v := range s.Env {
		add("env."+k, v)
	}
	return out
}

// actionTriggerStepID is the id of the step that runs deploy-trigger.
const actionTriggerStepID = "trigger"

var (
	exprRE      = regexp.MustCompile(`\$\{\{(.*?)\}\}`)
	inputRefRE  = regexp.MustCompile(`\binputs\.([A-Za-z_][A-Za-z0-9_-]*)`)
	stepRefRE   = regexp.MustCompile(`\bsteps\.([A-Za-z_][A-Za-z0-9_-]*)\.outputs\.([A-Za-z_][A-Za-z0-9_-]*)`)
	outputSetRE = regexp.MustCompile(`(?:^|\\n|['" ])([a-z][a-z0-9-]*)=`)
	scriptVarRE = regexp.MustCompile(`\$\{?(INPUT_[A-Z0-9_]+|DEPLOY_TRIGGER_BIN|ACTION_[A-Z_]+)`)
	pinnedRE    = regexp.MustCompile(`^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+)*|[0-9a-f]{40})$`)
)

func exprsIn(s string) []string {
	var out []string
	for _, m := range exprRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func loadAction(t testing.TB) *actionFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a actionFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return &a
}

// stepOutputs is what each step with an id sets: for run steps, the names
// its script writes to $GITHUB_OUTPUT. The trigger step's own writes are
// only those of its usage-error path; deploy-trigger writes the rest, which
// TestActionTriggerStep checks through real files.
func stepOutputs(a *actionFile) map[string][]string {
	out := map[string][]string{}
	for _, s := range a.Runs.Steps {
		if s.ID == "" || s.Run == "" {
			continue
		}
		names := []string{}
		for _, line := range strings.Split(s.Run, "\n") {
			cmd, _, ok := strings.Cut(line, ">> \"${GITHUB_OUTPUT")
			if !ok {
				cmd, _, ok = strings.Cut(line, ">> \"$GITHUB_OUTPUT\"")
			}
			if !ok {
				continue
			}
			for _, m := range outputSetRE.FindAllStringSubmatch(cmd, -1) {
				names = append(names, m[1])
			}
		}
		sort.Strings(names)
		out[s.ID] = slices.Compact(names)
	}
	return out
}

func TestActionInputsDeclaredAndUsed(t *testing.T) {
	a := loadAction(t)
	used := map[string]bool{}
	for _, s := range a.Runs.Steps {
		for where, exprs := range s.expressions() {
			for _, e := range exprs {
				if strings.Contains(e, "inputs[") || strings.Contains(e, "steps[") {
					t.Errorf("%s %s: %q: use inputs.name and steps.id.outputs.name, which this test can check", s.label(), where, e)
				}
				for _, m := range inputRefRE.FindAllStringSubmatch(e, -1) {
					used[m[1]] = true
					if _, ok := a.Inputs[m[1]]; !ok {
						t.Errorf("%s %s uses inputs.%s, which action.yml does not declare", s.label(), where, m[1])
					}
				}
			}
		}
	}
	for name, in := range a.Inputs {
		if !used[name] {
			t.Errorf("input %s is declared but no step uses it", name)
		}
		if strings.TrimSpace(in.Description) == "" {
			t.Errorf("input %s has no description", name)
		}
		if in.Required && in.Default != nil {
			t.Errorf("input %s is required but has a default (%q): a required input must come from the workflow", name, *in.Default)
		}
		if !in.Required && in.Default == nil {
			t.Errorf("input %s is optional but has no default: say what leaving it out means", name)
		}
	}
	if in, ok := a.Inputs["job"]; !ok || !in.Required {
		t.Errorf("input job must be declared and required")
	}
}

func TestActionOutputsWiredToSteps(t *testing.T) {
	a := loadAction(t)
	sets := stepOutputs(a)
	ids := map[string]bool{}
	for _, s := range a.Runs.Steps {
		if s.ID != "" {
			ids[s.ID] = true
		}
	}
	for _, want := range []string{"run-id", "exit-code", "task-arn"} {
		if _, ok := a.Outputs[want]; !ok {
			t.Errorf("output %s is missing", want)
		}
	}
	for name, o := range a.Outputs {
		if strings.TrimSpace(o.Description) == "" {
			t.Errorf("output %s has no description", name)
		}
		m := regexp.MustCompile(`^\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}$`).FindStringSubmatch(strings.TrimSpace(o.Value))
		if m == nil {
			t.Errorf("output %s: value %q is not ${{ steps.<id>.outputs.<name> }}", name, o.Value)
			continue
		}
		if !ids[m[1]] {
			t.Errorf("output %s: no step has id %q", name, m[1])
			continue
		}
		if !slices.Contains(sets[m[1]], m[2]) {
			t.Errorf("output %s: step %s never sets output %s (it sets %v)", name, m[1], m[2], sets[m[1]])
		}
	}
}

func TestActionSteps(t *testing.T) {
	a := loadAction(t)
	if a.Runs.Using != "composite" {
		t.Fatalf("runs.using is %q; the action is a composite action", a.Runs.Using)
	}
	if a.Name == "" || a.Description == "" {
		t.Error("action.yml needs a name and a description")
	}
	sets := stepOutputs(a)
	seen := map[string]bool{}
	var trigger *actionStep
	for i, s := range a.Runs.Steps {
		if (s.Run == "") == (s.Uses == "") {
			t.Errorf("%s: a step has exactly one of run and uses", s.label())
		}
		if s.ID != "" {
			if seen[s.ID] {
				t.Errorf("step id %s is used twice", s.ID)
			}
		}
		for where, exprs := range s.expressions() {
			for _, e := range exprs {
				for _, m := range stepRefRE.FindAllStringSubmatch(e, -1) {
					if !seen[m[1]] {
						t.Errorf("%s %s refers to steps.%s, which is not an earlier step", s.label(), where, m[1])
					} else if !slices.Contains(sets[m[1]], m[2]) && m[1] != actionTriggerStepID {
						t.Errorf("%s %s uses steps.%s.outputs.%s, which that step never sets", s.label(), where, m[1], m[2])
					}
				}
			}
		}
		if s.ID != "" {
			seen[s.ID] = true
		}
		if s.Uses != "" && !pinnedRE.MatchString(s.Uses) {
			t.Errorf("%s: uses %q is not pinned to a major version or a commit", s.label(), s.Uses)
		}
		if s.Run == "" {
			continue
		}
		if s.Shell != "bash" {
			t.Errorf("%s: shell is %q; composite run steps need shell: bash", s.label(), s.Shell)
		}
		// Script injection: an expression inside run: is pasted into the
		// script before bash reads it. Inputs go through env: instead.
		if strings.Contains(s.Run, "${{") {
			t.Errorf("%s: run: contains a ${{ }} expression; pass it through env: so that bash never parses user data", s.label())
		}
		for _, m := range scriptVarRE.FindAllStringSubmatch(s.Run, -1) {
			if _, ok := s.Env[m[1]]; !ok {
				t.Errorf("%s: the script reads $%s, which the step's env: does not set", s.label(), m[1])
			}
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(s.Run)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", s.label(), err, out)
		}
		if s.ID == actionTriggerStepID {
			trigger = &a.Runs.Steps[i]
		}
	}
	if trigger == nil {
		t.Fatalf("no run step has id %s", actionTriggerStepID)
	}
	// Cancellation: the last command must exec deploy-trigger, so the
	// runner's SIGINT/SIGTERM reach it rather than a waiting bash.
	lines := strings.Split(strings.TrimSpace(trigger.Run), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); !strings.HasPrefix(last, `exec "$DEPLOY_TRIGGER_BIN" `) {
		t.Errorf("the trigger step must end with exec \"$DEPLOY_TRIGGER_BIN\" …; it ends with %q", last)
	}
	if strings.Contains(trigger.Run, "eval ") {
		t.Error("the trigger step uses eval")
	}
}

// TestExampleWorkflow checks examples/github/deploy.yml against action.yml:
// OIDC permissions, credentials before the deploy step, only declared
// inputs, only declared outputs, cancel-in-progress concurrency.
func TestExampleWorkflow(t *testing.T) {
	a := loadAction(t)
	var wf struct {
		On struct {
			Push struct {
				Branches []string `yaml:"branches"`
			} `yaml:"push"`
		} `yaml:"on"`
		Permissions map[string]string `yaml:"permissions"`
		Concurrency struct {
			Group            string `yaml:"group"`
			CancelInProgress bool   `yaml:"cancel-in-progress"`
		} `yaml:"concurrency"`
		Jobs map[string]struct {
			Steps []actionStep `yaml:"steps"`
		} `yaml:"jobs"`
	}
	b := readFile(t, filepath.Join(repoRoot, "examples/github/deploy.yml"))
	if err := yaml.Unmarshal([]byte(b), &wf); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(wf.On.Push.Branches, "main") {
		t.Error("the example must deploy on push to main")
	}
	if wf.Permissions["id-token"] != "write" || wf.Permissions["contents"] != "read" {
		t.Errorf("permissions are %v; want id-token: write, contents: read", wf.Permissions)
	}
	if !wf.Concurrency.CancelInProgress || wf.Concurrency.Group == "" {
		t.Error("the example must show a concurrency group with cancel-in-progress")
	}
	found := false
	for _, job := range wf.Jobs {
		creds := false
		for _, s := range job.Steps {
			if strings.HasPrefix(s.Uses, "aws-actions/configure-aws-credentials@") {
				creds = s.With["role-to-assume"] != ""
			}
			if strings.Contains(s.Run, "${{") {
				t.Errorf("%s: run: contains a ${{ }} expression; pass it through env:", s.label())
			}
			for _, e := range s.expressions() {
				for _, expr := range e {
					for _, m := range stepRefRE.FindAllStringSubmatch(expr, -1) {
						if _, ok := a.Outputs[m[2]]; !ok && m[1] == "deploy" {
							t.Errorf("%s uses steps.deploy.outputs.%s, which the action does not declare", s.label(), m[2])
						}
					}
				}
			}
			if !strings.HasPrefix(s.Uses, "deploy-broker/deploy-broker@") {
				continue
			}
			found = true
			if !creds {
				t.Error("credentials (configure-aws-credentials with role-to-assume) must come before the deploy step")
			}
			for k := range s.With {
				if _, ok := a.Inputs[k]; !ok {
					t.Errorf("the deploy step passes %s, which action.yml does not declare", k)
				}
			}
			for name, in := range a.Inputs {
				if in.Required && s.With[name] == "" {
					t.Errorf("the deploy step leaves out required input %s", name)
				}
			}
			if s.ID != "deploy" {
				t.Errorf("the deploy step's id is %q; the example's report step reads steps.deploy", s.ID)
			}
		}
	}
	if !found {
		t.Fatal("no step uses deploy-broker/deploy-broker@…")
	}
}

// TestDocsShowTheExamples keeps docs/CI.md and the example files the same.
func TestDocsShowTheExamples(t *testing.T) {
	doc := readFile(t, filepath.Join(repoRoot, "docs/CI.md"))
	for _, f := range []string{"examples/github/deploy.yml", "examples/jenkins/Jenkinsfile"} {
		if !strings.Contains(doc, readFile(t, filepath.Join(repoRoot, f))) {
			t.Errorf("docs/CI.md does not show %s verbatim; copy the file into the doc again", f)
		}
	}
}

// actionStepInputs finds step id of action.yml and the inputs it runs with:
// the given ones over action.yml's defaults. A test passing an input that
// action.yml does not declare fails.
func actionStepInputs(t testing.TB, id string, with map[string]string) (*actionStep, map[string]string) {
	t.Helper()
	a := loadAction(t)
	var step *actionStep
	for i := range a.Runs.Steps {
		if a.Runs.Steps[i].ID == id {
			step = &a.Runs.Steps[i]
		}
	}
	if step == nil {
		t.Fatalf("action.yml has no step %s", id)
	}
	inputs := map[string]string{}
	for name, in := range a.Inputs {
		if in.Default != nil {
			inputs[name] = *in.Default
		}
	}
	for k, v := range with {
		if _, ok := a.Inputs[k]; !ok {
			t.Fatalf("test passes undeclared input %s", k)
		}
		inputs[k] = v
	}
	return step, inputs
}

// evalEnv is the step's env: as NAME=value lines, each ${{ expr }}
// replaced by eval(expr).
func (s actionStep) evalEnv(eval func(expr string) string) []string {
	var env []string
	for k, v := range s.Env {
		env = append(env, k+"="+exprRE.ReplaceAllStringFunc(v, func(m string) string {
			return eval(exprRE.FindStringSubmatch(m)[1])
		}))
	}
	return env
}

// runStepResult is one run of the action's trigger step.
type runStepResult struct {
	code           int
	stdout, stderr string
	outputs        map[string]string
	outputKeys     []string // in the order written
	summary        string
}

// triggerStep prepares the action's deploy-trigger step to run with bash as
// the runner would: the step's env: with its expressions evaluated for the
// given inputs (defaults from action.yml), GITHUB_ACTIONS=true, and
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY in a temporary directory.
func triggerStep(t *testing.T, with map[string]string) (*exec.Cmd, *testutil.SyncBuffer, *testutil.SyncBuffer, string) {
	t.Helper()
	return triggerStepWith(t, with, filepath.Join(binaries(t), "deploy-trigger"))
}

// triggerStepWith is triggerStep with the deploy-trigger that the install
// step put at path.
func triggerStepWith(t *testing.T, with map[string]string, path string) (*exec.Cmd, *testutil.SyncBuffer, *testutil.SyncBuffer, string) {
	t.Helper()
	step, inputs := actionStepInputs(t, actionTriggerStepID, with)
	b := localBroker(t)
	stepOut := map[string]map[string]string{"install": {"path": path}}
	eval := func(expr string) string {
		expr = strings.TrimSpace(expr)
		if m := regexp.MustCompile(`^inputs\.([A-Za-z0-9_-]+)$`).FindStringSubmatch(expr); m != nil {
			return inputs[m[1]]
		}
		if m := regexp.MustCompile(`^steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)$`).FindStringSubmatch(expr); m != nil {
			if v, ok := stepOut[m[1]][m[2]]; ok {
				return v
			}
		}
		t.Fatalf("the trigger step uses ${{ %s }}, which this test cannot evaluate; extend it", expr)
		return ""
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "step.sh")
	if err := os.WriteFile(script, []byte(step.Run), 0o644); err != nil {
		t.Fatal(err)
	}
	outputs := filepath.Join(dir, "github_output")
	env := append(baseEnv(), brokerEnv(b)...)
	env = append(env,
		"GITHUB_ACTIONS=true",
		"GITHUB_OUTPUT="+outputs,
		"GITHUB_STEP_SUMMARY="+filepath.Join(dir, "step_summary"),
		"GITHUB_REPOSITORY=acme/website",
		"GITHUB_REF=refs/heads/main",
		"GITHUB_RUN_ID=4242",
		"GITHUB_WORKFLOW=deploy",
	)
	env = append(env, step.evalEnv(eval)...)
	// The runner runs composite bash steps as bash --noprofile --norc -eo pipefail {0}.
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Env = env
	cmd.Dir = dir
	stdout, stderr := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, stdout, stderr, dir
}

func finishStep(t *testing.T, err error, stdout, stderr *testutil.SyncBuffer, dir string) runStepResult {
	t.Helper()
	r := runStepResult{stdout: stdout.String(), stderr: stderr.String(), outputs: map[string]string{}}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the trigger step: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "github_output")); err == nil {
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for i := 0; i < len(lines); i++ {
			line := lines[i]
			k, v, ok := strings.Cut(line, "=")
			if name, delim, heredoc := strings.Cut(line, "<<"); heredoc && (!ok || strings.Contains(k, "<<")) {
				// The job's outputs: name<<DELIMITER, lines, DELIMITER.
				var value []string
				for i++; i < len(lines) && lines[i] != delim; i++ {
					value = append(value, lines[i])
				}
				if i == len(lines) || len(delim) < 32 {
					t.Fatalf("GITHUB_OUTPUT heredoc %q is not closed or has a guessable delimiter", line)
				}
				k, v, ok = name, strings.Join(value, "\n"), true
			}
			if !ok {
				t.Fatalf("GITHUB_OUTPUT line %q is not name=value", line)
			}
			// The runner reads output names case-insensitively, a later
			// write winning: keyed by the lower-case name here.
			k = strings.ToLower(k)
			if _, dup := r.outputs[k]; dup {
				t.Errorf("GITHUB_OUTPUT sets %s twice (names are case-insensitive)", k)
			}
			r.outputs[k] = v
			r.outputKeys = append(r.outputKeys, k)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "step_summary")); err == nil {
		r.summary = string(b)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	return r
}

func runTriggerStep(t *testing.T, with map[string]string) runStepResult {
	t.Helper()
	cmd, stdout, stderr, dir := triggerStep(t, with)
	err := cmd.Run()
	return finishStep(t, err, stdout, stderr, dir)
}

func runTriggerStepWith(t *testing.T, with map[string]string, path string) runStepResult {
	t.Helper()
	cmd, stdout, stderr, dir := triggerStepWith(t, with, path)
	err := cmd.Run()
	return finishStep(t, err, stdout, stderr, dir)
}

var runIDRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

func TestActionTriggerStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local broker (moto); skipped with -short")
	}
	b := localBroker(t)
	a := loadAction(t)

	t.Run("multi-line parameters reach the job verbatim", func(t *testing.T) {
		sentinel := filepath.Join(t.TempDir(), "pwned")
		greeting := `hello, world = "quoted" 'single' $(touch ` + sentinel + ") `touch " + sentinel + "` ; exit 7 $HOME"
		r := runTriggerStep(t, map[string]string{
			"topic-arn": b.TopicARN(),
			"job":       "echo-params",
			"parameters": "greeting=" + greeting + "\n" +
				"   \n" +
				"  # a comment, skipped\n" +
				"note=  two  spaces\r\n" +
				"code=0\n",
			"start-timeout": "2m",
		})
		if r.code != 0 {
			t.Fatalf("exit code %d, want 0", r.code)
		}
		for _, want := range []string{"greeting=[" + greeting + "]\n", "note=[  two  spaces]\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the job did not print %q", want)
			}
		}
		if _, err := os.Stat(sentinel); err == nil {
			t.Error("a parameter value was run by a shell")
		}
		if !strings.Contains(r.stdout, "::group::") || !strings.Contains(r.stdout, "::stop-commands::") {
			t.Error("deploy-trigger did not run in GitHub mode")
		}
		if !runIDRE.MatchString(r.outputs["run-id"]) {
			t.Errorf("run-id output %q is not a run id", r.outputs["run-id"])
		}
		if r.outputs["exit-code"] != "0" || r.outputs["outcome"] != "succeeded" {
			t.Errorf("outputs %v; want exit-code=0, outcome=succeeded", r.outputs)
		}
		if !strings.HasPrefix(r.outputs["task-arn"], "arn:aws:ecs:") {
			t.Errorf("task-arn output %q is not an ECS task ARN", r.outputs["task-arn"])
		}
		for _, want := range []string{"### ✅ deploy-trigger: echo-params", "| Outcome | succeeded |", "| Run id | `" + r.outputs["run-id"] + "` |", "| Task | `"} {
			if !strings.Contains(r.summary, want) {
				t.Errorf("step summary lacks %q:\n%s", want, r.summary)
			}
		}
		// Every output deploy-trigger writes is an output of the action,
		// and every action output wired to this step is written.
		wired := map[string]bool{}
		for name, o := range a.Outputs {
			if m := stepRefRE.FindStringSubmatch(o.Value); m != nil && m[1] == actionTriggerStepID {
				wired[m[2]] = true
				if _, ok := r.outputs[m[2]]; !ok {
					t.Errorf("action output %s reads steps.%s.outputs.%s, which deploy-trigger did not write", name, m[1], m[2])
				}
			}
		}
		var jobOutputs map[string]string
		if err := json.Unmarshal([]byte(r.outputs["outputs"]), &jobOutputs); err != nil || jobOutputs["code"] != "0" || jobOutputs["greeting"] != "["+greeting+"]" {
			t.Errorf("outputs output %q (%v); want the job's outputs as JSON", r.outputs["outputs"], err)
		}
		if r.outputs["greeting"] != "["+greeting+"]" {
			t.Errorf("the job's output greeting is not written by its name: %v", r.outputs)
		}
		for _, k := range r.outputKeys {
			if _, ok := jobOutputs[k]; !wired[k] && !ok {
				t.Errorf("deploy-trigger writes output %s, which action.yml does not expose", k)
			}
		}
	})

	t.Run("job failure", func(t *testing.T) {
		r := runTriggerStep(t, map[string]string{"topic-arn": b.TopicARN(), "job": "echo-params", "parameters": "greeting=hi\ncode=3"})
		if r.code != 3 || r.outputs["exit-code"] != "3" || r.outputs["outcome"] != "failed" {
			t.Fatalf("exit code %d, outputs %v; want 3, exit-code=3, outcome=failed", r.code, r.outputs)
		}
		if !strings.Contains(r.stdout, "::error title=deploy-trigger::") || !strings.Contains(r.summary, "### ❌") {
			t.Error("no error annotation or failed summary")
		}
	})

	// Issue 24: a job that exits 3 and writes Exit-Code=0, Outcome=succeeded
	// and Requested-By=x cannot change the action's outputs.
	t.Run("job outputs named like the action's own", func(t *testing.T) {
		r := runTriggerStep(t, map[string]string{"topic-arn": b.TopicARN(), "job": "forge-outputs"})
		if r.code != 3 || r.outputs["exit-code"] != "3" || r.outputs["outcome"] != "failed" || !strings.HasPrefix(r.outputs["requested-by"], "arn:aws:") {
			t.Fatalf("exit code %d, outputs %v; want 3, exit-code=3, outcome=failed, requested-by the verified ARN", r.code, r.outputs)
		}
		if r.outputs["image"] != "app:1" || !strings.Contains(r.outputs["outputs"], `"Exit-Code":"0"`) {
			t.Errorf("outputs %v; want image by name and every job output in the JSON", r.outputs)
		}
		if n := strings.Count(r.stdout, "::warning title=deploy-trigger::job output"); n != 3 {
			t.Errorf("%d warnings about the job's output names, want 3", n)
		}
	})

	t.Run("rejected by the catalogue", func(t *testing.T) {
		r := runTriggerStep(t, map[string]string{"topic-arn": b.TopicARN(), "job": "no-such-job"})
		if r.code != 241 || r.outputs["exit-code"] != "241" || !runIDRE.MatchString(r.outputs["run-id"]) {
			t.Fatalf("exit code %d, outputs %v; want 241 with a run id", r.code, r.outputs)
		}
	})

	t.Run("parameter line without =", func(t *testing.T) {
		r := runTriggerStep(t, map[string]string{"topic-arn": b.TopicARN(), "job": "echo-params", "parameters": "greeting=hi\njust words"})
		if r.code != 240 || r.outputs["exit-code"] != "240" {
			t.Fatalf("exit code %d, outputs %v; want 240", r.code, r.outputs)
		}
		if !strings.Contains(r.stdout, "::error title=deploy-broker action::parameter line 'just words'") {
			t.Errorf("no error annotation naming the line")
		}
	})

	t.Run("region disagrees with the topic", func(t *testing.T) {
		r := runTriggerStep(t, map[string]string{"topic-arn": b.TopicARN(), "region": "xx-nowhere-1", "job": "echo-params"})
		if r.code != 240 {
			t.Fatalf("exit code %d, want 240", r.code)
		}
	})

	t.Run("cancel: SIGINT to the step process cancels the run", func(t *testing.T) {
		cmd, stdout, stderr, dir := triggerStep(t, map[string]string{"topic-arn": b.TopicARN(), "job": "sleeper"})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, stdout, "sleeper started")
		// exec: the step's process is deploy-trigger itself, not bash.
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); err == nil && filepath.Base(exe) != "deploy-trigger" {
			t.Errorf("the step's process is %s, not deploy-trigger: bash did not exec it", exe)
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		r := finishStep(t, waitOrKill(t, cmd, time.Minute), stdout, stderr, dir)
		if r.code != 245 || r.outputs["exit-code"] != "245" || r.outputs["outcome"] != "cancelled" {
			t.Fatalf("exit code %d, outputs %v; want 245, outcome=cancelled", r.code, r.outputs)
		}
		if !strings.Contains(r.stdout, "cancelling run") || !strings.Contains(r.stdout, "sleeper got SIGTERM") {
			t.Errorf("the output does not show the cancel reaching the job")
		}
	})
}
