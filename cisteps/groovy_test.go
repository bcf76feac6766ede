package cisteps

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// groovyCase is one call of the Jenkins step in the harness
// (testdata/groovy/harness.groovy).
type groovyCase struct {
	Args   map[string]any `json:"args"`
	Status int            `json:"status"`         // what the stubbed sh returns
	Exec   bool           `json:"exec,omitempty"` // really run the script instead
}

// groovyResult is what the step did in one case.
type groovyResult struct {
	Sh []struct {
		Script       string   `json:"script"`
		Label        string   `json:"label"`
		ReturnStatus bool     `json:"returnStatus"`
		Env          []string `json:"env"`
		InAWS        int      `json:"inAWS"`
		Output       string   `json:"output"`
	} `json:"sh"`
	Echo      []string         `json:"echo"`
	Unstable  []string         `json:"unstable"`
	WithAWS   []map[string]any `json:"withAWS"`
	Returned  map[string]any   `json:"returned"`
	Error     string           `json:"error"`
	Exception string           `json:"exception"`
	Result    *string          `json:"result"`
}

// groovy finds the groovy command (Debian's groovy package) or skips.
func groovy(t *testing.T) []string {
	t.Helper()
	g, err := exec.LookPath("groovy")
	if err != nil {
		t.Skip("groovy is not installed, so the Jenkins step and Jenkinsfile were not checked: apt-get install -y groovy")
	}
	env := baseEnv()
	// Debian's groovy script looks for /usr/lib/jvm/default-java unless
	// JAVA_HOME is set; default-jre-headless provides that, but a JDK
	// installed another way may not.
	if os.Getenv("JAVA_HOME") == "" {
		if _, err := os.Stat("/usr/lib/jvm/default-java/bin/java"); err != nil {
			java, err := exec.LookPath("java")
			if err != nil {
				t.Skip("groovy is installed but no java is on PATH")
			}
			if real, err := filepath.EvalSymlinks(java); err == nil {
				env = append(env, "JAVA_HOME="+filepath.Dir(filepath.Dir(real)))
			}
		}
	}
	return append([]string{g}, env...)
}

// runHarness parses the step and the example Jenkinsfile with groovy, then
// runs the step once per case with stubbed Pipeline steps.
func runHarness(t *testing.T, extraEnv []string, cases []groovyCase) []groovyResult {
	t.Helper()
	g := groovy(t)
	dir := t.TempDir()
	casesFile := filepath.Join(dir, "cases.json")
	b, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(casesFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(g[0], "-cp", "testdata/groovy", "testdata/groovy/harness.groovy", casesFile,
		filepath.Join(repoRoot, "vars/deployTrigger.groovy"), filepath.Join(repoRoot, "examples/jenkins/Jenkinsfile"))
	cmd.Env = append(g[1:], extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("groovy harness: %v\n%s", err, out)
	}
	_, js, ok := strings.Cut(string(out), "HARNESS-RESULT ")
	if !ok {
		t.Fatalf("groovy harness printed no result:\n%s", out)
	}
	var res []groovyResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(js)), &res); err != nil {
		t.Fatalf("decoding the harness result: %v\n%s", err, out)
	}
	if len(res) != len(cases) {
		t.Fatalf("%d results for %d cases", len(res), len(cases))
	}
	return res
}

// argvOf runs a recorded sh script with a stand-in deploy-trigger that
// prints its arguments, and returns them: the words the shell really passes.
func argvOf(t *testing.T, script string) []string {
	t.Helper()
	dir := t.TempDir()
	fake := filepath.Join(dir, "deploy-trigger")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nfor a do printf '%s\\0' \"$a\"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-e", f)
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running the recorded script: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a parameter value was run by the shell")
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// tricky is a parameter value that breaks any unquoted or double-quoted
// interpolation into a shell script.
const tricky = `it's "quoted" $(touch pwned) ` + "`touch pwned`" + ` ; touch pwned & $HOME \ * 'end'`

func TestJenkinsStep(t *testing.T) {
	statuses := map[int]struct {
		inError string
		aborted bool
	}{
		1:   {inError: "the job failed with exit code 1"},
		2:   {inError: "the job failed with exit code 2"},
		240: {inError: "usage error (exit 240)"},
		241: {inError: "rejected the request (exit 241)"},
		248: {inError: "safety stop (exit 248)"},
		242: {inError: "broker trouble (exit 242)"},
		243: {inError: "broker trouble (exit 243)"},
		246: {inError: "broker trouble (exit 246)"},
		247: {inError: "broker trouble (exit 247)"},
		244: {inError: "timeout (exit 244)"},
		245: {inError: "cancelled (exit 245)", aborted: true},
	}
	cases := []groovyCase{
		{Args: map[string]any{
			"job": "website", "env": "staging", "environments": "deploy/environments.yaml",
			"params": map[string]any{"version": "1.4.2", "note": tricky, "empty": ""},
			"region": "eu-west-1", "startTimeout": "5m", "timeout": "30m", "expectAccount": "222222222222",
			"roleArn": "arn:aws:iam::111111111111:role/jenkins-trigger", "externalId": "acme",
			"extraArgs": []string{"--cancel-grace", "1m"},
		}},
		{Args: map[string]any{"job": "website", "credentialsId": "jenkins-aws", "region": "eu-west-1", "topicArn": "arn:aws:sns:eu-west-1:222222222222:deploy-broker"}},
		{Args: map[string]any{"job": "smoke-test", "unstableOn": []int{3}}, Status: 3},
		{Args: map[string]any{"job": "smoke-test", "propagate": false}, Status: 1},
		{Args: map[string]any{"job": "website", "bogus": true}},
		{Args: map[string]any{"params": map[string]any{"version": "1"}}},
		{Args: map[string]any{"job": "website", "params": map[string]any{"Version": "1"}}},
		{Args: map[string]any{"job": "website", "params": "version=1"}},
	}
	codes := make([]int, 0, len(statuses))
	for code := range statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	for _, code := range codes {
		cases = append(cases, groovyCase{Args: map[string]any{"job": "website"}, Status: code})
	}

	res := runHarness(t, nil, cases)
	for i, r := range res {
		if r.Exception != "" {
			t.Errorf("case %d (%v): the step threw %s instead of calling error", i, cases[i].Args, r.Exception)
		}
	}

	// Every argument is one word, whatever it holds.
	r := res[0]
	if len(r.Sh) != 1 || r.Error != "" || r.Result != nil {
		t.Fatalf("the full call: %+v", r)
	}
	sh := r.Sh[0]
	if !sh.ReturnStatus || !strings.HasPrefix(sh.Script, "exec ") || sh.Label != "deploy-trigger website" {
		t.Errorf("sh call %+v: want returnStatus, an exec script and a label", sh)
	}
	if !slices.Contains(sh.Env, "AWS_REGION=eu-west-1") {
		t.Errorf("sh env %v lacks AWS_REGION", sh.Env)
	}
	argv := argvOf(t, sh.Script)
	// The result file comes first; the run id is read back from it.
	if len(argv) < 2 || argv[0] != "--result-file" || !strings.HasSuffix(argv[1], ".json") {
		t.Fatalf("deploy-trigger got %q: want --result-file FILE first", argv)
	}
	argv = argv[2:]
	wantFlags := []string{"--output", "plain", "--env", "staging", "--environments", "deploy/environments.yaml",
		"--expect-account", "222222222222", "--start-timeout", "5m", "--timeout", "30m",
		"--role-arn", "arn:aws:iam::111111111111:role/jenkins-trigger", "--external-id", "acme",
		"--cancel-grace", "1m", "--", "website"}
	if len(argv) < len(wantFlags) || !slices.Equal(argv[:len(wantFlags)], wantFlags) {
		t.Errorf("deploy-trigger got\n%q\nwant it to start with\n%q", argv, wantFlags)
	} else {
		params := slices.Sorted(slices.Values(argv[len(wantFlags):]))
		want := []string{"empty=", "note=" + tricky, "version=1.4.2"}
		if !slices.Equal(params, want) {
			t.Errorf("parameters %q, want %q", params, want)
		}
	}
	if r.Returned["exitCode"] != float64(0) || r.Returned["outcome"] != "succeeded" {
		t.Errorf("returned %v", r.Returned)
	}

	// credentialsId: withAWS around the sh step.
	r = res[1]
	if len(r.WithAWS) != 1 || r.WithAWS[0]["credentials"] != "jenkins-aws" || r.WithAWS[0]["region"] != "eu-west-1" ||
		len(r.Sh) != 1 || r.Sh[0].InAWS != 1 {
		t.Errorf("credentialsId: withAWS %v, sh %+v", r.WithAWS, r.Sh)
	}
	if got := argvOf(t, r.Sh[0].Script); !slices.Contains(got, "--topic-arn") {
		t.Errorf("topicArn not passed: %q", got)
	}

	// unstableOn and propagate: false.
	if r := res[2]; r.Error != "" || len(r.Unstable) != 1 || r.Returned["exitCode"] != float64(3) {
		t.Errorf("unstableOn [3] with exit 3: %+v", r)
	}
	if r := res[3]; r.Error != "" || len(r.Unstable) != 0 || r.Result != nil || r.Returned["outcome"] != "failed" {
		t.Errorf("propagate false with exit 1: %+v", r)
	}

	// Bad calls fail before running anything, with a clear message.
	for i, want := range map[int]string{4: "unknown argument(s) bogus", 5: "job is required", 6: "parameter name 'Version' is not valid", 7: "params must be a Map"} {
		if r := res[i]; len(r.Sh) != 0 || !strings.Contains(r.Error, want) {
			t.Errorf("case %v: sh %d times, error %q; want no sh and %q", cases[i].Args, len(r.Sh), r.Error, want)
		}
	}

	// Exit codes → build results.
	for i, code := range codes {
		r := res[8+i]
		want := statuses[code]
		if !strings.Contains(r.Error, want.inError) {
			t.Errorf("exit %d: error %q, want it to contain %q", code, r.Error, want.inError)
		}
		aborted := r.Result != nil && *r.Result == "ABORTED"
		if aborted != want.aborted {
			t.Errorf("exit %d: currentBuild.result %v, want ABORTED: %v", code, r.Result, want.aborted)
		}
	}
}

// TestJenkinsfileUsesKnownArguments checks every deployTrigger call in the
// example Jenkinsfile and in docs/CI.md against the step's argument list.
func TestJenkinsfileUsesKnownArguments(t *testing.T) {
	step := readFile(t, filepath.Join(repoRoot, "vars/deployTrigger.groovy"))
	m := regexp.MustCompile(`(?s)KNOWN_ARGS = \[(.*?)\]`).FindStringSubmatch(step)
	if m == nil {
		t.Fatal("vars/deployTrigger.groovy has no KNOWN_ARGS list")
	}
	known := regexp.MustCompile(`'(\w+)'`).FindAllStringSubmatch(m[1], -1)
	isKnown := func(k string) bool {
		return slices.ContainsFunc(known, func(m []string) bool { return m[1] == k })
	}
	for _, f := range []string{"examples/jenkins/Jenkinsfile", "docs/CI.md"} {
		text := readFile(t, filepath.Join(repoRoot, f))
		calls := 0
		for _, call := range callArgs(text, "deployTrigger(") {
			calls++
			// Drop string literals, then Map and List literals (their keys
			// are job parameters).
			flat := regexp.MustCompile(`'[^']*'|"[^"]*"`).ReplaceAllString(call, "''")
			flat = regexp.MustCompile(`\[[^\[\]]*\]`).ReplaceAllString(flat, "[]")
			for _, k := range regexp.MustCompile(`(\w+)\s*:`).FindAllStringSubmatch(flat, -1) {
				if !isKnown(k[1]) {
					t.Errorf("%s: deployTrigger(%s) passes %s, which the step does not know", f, call, k[1])
				}
			}
			if !strings.Contains(flat, "job:") {
				t.Errorf("%s: deployTrigger(%s) has no job", f, call)
			}
		}
		if calls == 0 {
			t.Errorf("%s calls deployTrigger nowhere", f)
		}
	}
}

// callArgs returns the argument text of every call of fn( in text.
func callArgs(text, fn string) []string {
	var out []string
	for {
		i := strings.Index(text, fn)
		if i < 0 {
			return out
		}
		text = text[i+len(fn):]
		depth := 1
		for j, c := range text {
			switch c {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				out = append(out, text[:j])
				break
			}
		}
	}
}

// TestJenkinsStepRuns runs the step for real: its sh script, as Jenkins
// runs it (sh -xe), starts deploy-trigger against the local broker; and an
// abort (SIGTERM to the step's process, as Jenkins sends) cancels the run.
func TestJenkinsStepRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local broker (moto); skipped with -short")
	}
	groovy(t)
	bin := binaries(t)
	b := localBroker(t)
	env := append(brokerEnv(b), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"JENKINS_URL=http://jenkins.example/", "JOB_NAME=website/main", "BUILD_NUMBER=7",
		"BUILD_URL=http://jenkins.example/job/website/job/main/7/", "DEPLOY_GREETING=s3cret-greeting")
	greeting := strings.ReplaceAll(tricky, "pwned", filepath.Join(t.TempDir(), "pwned"))
	res := runHarness(t, env, []groovyCase{
		{Exec: true, Args: map[string]any{"job": "echo-params", "topicArn": b.TopicARN(), "params": map[string]any{"greeting": greeting, "note": "ok"}}},
		{Exec: true, Args: map[string]any{"job": "echo-params", "topicArn": b.TopicARN(), "params": map[string]any{"greeting": "hi", "code": 3}}},
		{Status: 0, Args: map[string]any{"job": "sleeper", "topicArn": b.TopicARN()}},
		{Exec: true, Args: map[string]any{"job": "echo-params", "topicArn": b.TopicARN(), "secretEnv": map[string]any{"greeting": "DEPLOY_GREETING"}}},
	})
	// secretEnv: the value reaches the job from the environment, and is in
	// neither the script nor the log.
	if r := res[3]; r.Error != "" || r.Returned["exitCode"] != float64(0) || len(r.Sh) != 1 ||
		strings.Contains(r.Sh[0].Script, "s3cret-greeting") || strings.Contains(output(r), "s3cret-greeting") || !strings.Contains(output(r), "greeting=") {
		t.Errorf("a run with secretEnv: error %q, returned %v, script %q, output:\n%s", r.Error, r.Returned, r.Sh[0].Script, output(r))
	}

	if id, _ := res[0].Returned["runId"].(string); protocol.ValidateRunID(id) != nil {
		t.Errorf("the step returned run id %q, want the run's ULID from --result-file", id)
	}
	if outs, _ := res[0].Returned["outputs"].(map[string]any); outs["greeting"] != "["+greeting+"]" || outs["code"] != "0" {
		t.Errorf("the step returned outputs %v, want the job's outputs from --result-file", res[0].Returned["outputs"])
	}
	if arn, _ := res[0].Returned["taskArn"].(string); !strings.HasPrefix(arn, "arn:aws:ecs:") {
		t.Errorf("the step returned task ARN %q, want the run's task from --result-file", arn)
	}
	if r := res[0]; r.Error != "" || r.Returned["exitCode"] != float64(0) || len(r.Sh) != 1 ||
		!strings.Contains(r.Sh[0].Output, "greeting=["+greeting+"]\n") {
		t.Errorf("a successful run: error %q, returned %v, output:\n%s", r.Error, r.Returned, output(r))
	}
	if r := res[1]; !strings.Contains(r.Error, "the job failed with exit code 3") || !strings.Contains(output(r), "deploy-trigger: ") {
		t.Errorf("a failing job: error %q, output:\n%s", r.Error, output(r))
	}

	// Abort: Jenkins sends SIGTERM to the step's processes.
	script := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(script, []byte(res[2].Sh[0].Script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-xe", script)
	cmd.Env = append(baseEnv(), env...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "sleeper started")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := waitOrKill(t, cmd, time.Minute)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 245 || !strings.Contains(out.String(), "sleeper got SIGTERM") {
		t.Errorf("after SIGTERM: exit %d (want 245); output:\n%s", code, out.String())
	}
}

func output(r groovyResult) string {
	var b strings.Builder
	for _, s := range r.Sh {
		fmt.Fprintln(&b, s.Output)
	}
	return b.String()
}

// Review finding 6: secretEnv passes a secret parameter as name@env=VAR, so
// its value is read by deploy-trigger from the environment (withCredentials)
// and is neither in the step's script file nor in any argv.
func TestJenkinsStepSecretEnv(t *testing.T) {
	cases := []groovyCase{
		{Args: map[string]any{"job": "website", "params": map[string]any{"version": "1"}, "secretEnv": map[string]any{"token": "DEPLOY_TOKEN", "db_password": "DB_PW"}}},
		{Args: map[string]any{"job": "website", "secretEnv": map[string]any{"Token": "DEPLOY_TOKEN"}}},
		{Args: map[string]any{"job": "website", "secretEnv": map[string]any{"token": "$(touch pwned)"}}},
		{Args: map[string]any{"job": "website", "params": map[string]any{"token": "x"}, "secretEnv": map[string]any{"token": "DEPLOY_TOKEN"}}},
		{Args: map[string]any{"job": "website", "secretEnv": "token=DEPLOY_TOKEN"}},
	}
	res := runHarness(t, nil, cases)
	r := res[0]
	if len(r.Sh) != 1 || r.Error != "" {
		t.Fatalf("secretEnv call: %+v", r)
	}
	argv := argvOf(t, r.Sh[0].Script)
	i := slices.Index(argv, "--")
	if i < 0 {
		t.Fatalf("no -- in %q", argv)
	}
	got := slices.Sorted(slices.Values(argv[i+2:]))
	want := []string{"db_password@env=DB_PW", "token@env=DEPLOY_TOKEN", "version=1"}
	if !slices.Equal(got, want) {
		t.Errorf("parameters %q, want %q", got, want)
	}
	for i, want := range map[int]string{
		1: "secretEnv parameter name 'Token' is not valid",
		2: "secretEnv variable '$(touch pwned)' for 'token' is not an environment variable name",
		3: "parameter 'token' is in both params and secretEnv",
		4: "secretEnv must be a Map",
	} {
		if r := res[i]; len(r.Sh) != 0 || !strings.Contains(r.Error, want) {
			t.Errorf("case %v: sh %d times, error %q; want no sh and %q", cases[i].Args, len(r.Sh), r.Error, want)
		}
	}
}
