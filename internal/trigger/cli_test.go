package trigger

import (
	"bytes"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestParseCLI(t *testing.T) {
	const topic = "arn:aws:sns:eu-west-1:123456789012:deploy-broker"
	tests := []struct {
		name    string
		args    []string
		env     []string
		check   func(*testing.T, *Config)
		wantErr string
	}{
		{name: "job and params", args: []string{"--topic-arn", topic, "website", "version=1.4.2", "note=a=b", "empty="},
			check: func(t *testing.T, c *Config) {
				if c.Job != "website" || c.JobParams["version"] != "1.4.2" || c.JobParams["note"] != "a=b" || c.JobParams["empty"] != "" {
					t.Errorf("got %+v", c)
				}
				if c.Topic.Region != "eu-west-1" || c.Topic.Account != "123456789012" || c.Topic.Name != "deploy-broker" {
					t.Errorf("topic = %+v", c.Topic)
				}
			}},
		{name: "defaults", args: []string{"--topic-arn", topic, "website"},
			check: func(t *testing.T, c *Config) {
				if c.StartTimeout != 10*time.Minute || c.RequestTTL != 5*time.Minute || c.CancelGrace != 2*time.Minute || c.MissedHeartbeats != 0 || c.Output != "auto" {
					t.Errorf("defaults = %+v", c.CLI)
				}
			}},
		{name: "topic from env", args: []string{"website"}, env: []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + topic},
			check: func(t *testing.T, c *Config) {
				if c.TopicARN != topic {
					t.Errorf("topic %q", c.TopicARN)
				}
			}},
		{name: "flags from env", args: []string{"website"}, env: []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + topic, "DEPLOY_TRIGGER_START_TIMEOUT=30s", "DEPLOY_TRIGGER_YES=true", "DEPLOY_TRIGGER_OUTPUT=json"},
			check: func(t *testing.T, c *Config) {
				if c.StartTimeout != 30*time.Second || !c.Yes || c.Output != "json" {
					t.Errorf("got %+v", c.CLI)
				}
			}},
		{name: "flag beats env", args: []string{"--start-timeout", "1m", "website"}, env: []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + topic, "DEPLOY_TRIGGER_START_TIMEOUT=30s"},
			check: func(t *testing.T, c *Config) {
				if c.StartTimeout != time.Minute {
					t.Errorf("start timeout %s", c.StartTimeout)
				}
			}},
		// Issue 14.5: the request expires no later than the trigger stops
		// waiting for it.
		{name: "request ttl bounded by start timeout", args: []string{"--topic-arn", topic, "--start-timeout", "15s", "website"},
			check: func(t *testing.T, c *Config) {
				if c.RequestTTL != 15*time.Second {
					t.Errorf("request ttl %s, want the 15s start timeout", c.RequestTTL)
				}
			}},
		{name: "missing topic", args: []string{"website"}, wantErr: "no broker topic: pass --env NAME"},
		{name: "missing job", args: []string{"--topic-arn", topic}, wantErr: "no job given"},
		{name: "bad param syntax", args: []string{"--topic-arn", topic, "website", "version"}, wantErr: `parameter "version" is not in key=value form`},
		{name: "bad param name", args: []string{"--topic-arn", topic, "website", "Version=1"}, wantErr: `parameter name "Version" is not valid`},
		{name: "no param name", args: []string{"--topic-arn", topic, "website", "=1"}, wantErr: "an argument begins with '='"},
		{name: "duplicate param", args: []string{"--topic-arn", topic, "website", "a=1", "a=2"}, wantErr: `parameter "a" is given twice`},
		{name: "bad topic", args: []string{"--topic-arn", "arn:aws:sqs:eu-west-1:123456789012:q", "website"}, wantErr: "is not an SNS topic ARN"},
		{name: "bad topic account", args: []string{"--topic-arn", "arn:aws:sns:eu-west-1:1234:q", "website"}, wantErr: "not a 12-digit account id"},
		{name: "wrong account", args: []string{"--topic-arn", topic, "--expect-account", "111122223333", "website"}, wantErr: "is in account 123456789012, but account 111122223333 is expected"},
		{name: "external id without role", args: []string{"--topic-arn", topic, "--external-id", "x", "website"}, wantErr: "--external-id needs --role-arn"},
		{name: "bad output", args: []string{"--topic-arn", topic, "-o", "xml", "website"}, wantErr: "--output must be one of"},
		{name: "unknown flag", args: []string{"--topic", topic, "website"}, wantErr: "unknown flag --topic"},
		{name: "bad duration", args: []string{"--topic-arn", topic, "--start-timeout", "ten", "website"}, wantErr: "--start-timeout"},
		{name: "ttl too long", args: []string{"--topic-arn", topic, "--request-ttl", "2h", "website"}, wantErr: "--request-ttl must be between"},
		{name: "unknown environment", args: []string{"--environments", "testdata/environments.yaml", "--env", "prod", "website"}, wantErr: `unknown environment "prod": testdata/environments.yaml defines local, production, staging`},
		{name: "environment", args: []string{"--environments", "testdata/environments.yaml", "--env", "production", "website"},
			check: func(t *testing.T, c *Config) {
				if c.Topic.ARN != "arn:aws:sns:eu-west-1:210987654321:deploy-broker" || c.Account != "210987654321" || c.AccountAlias != "acme-prod" ||
					!c.Confirm || c.Profile != "prod-deployer" {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "environment from env var", args: []string{"website"}, env: []string{"DEPLOY_TRIGGER_ENV=staging", "DEPLOY_TRIGGER_ENVIRONMENTS=testdata/environments.yaml"},
			check: func(t *testing.T, c *Config) {
				if c.RoleARN != "arn:aws:iam::111122223333:role/ci-trigger" || c.ExternalID != "acme" || c.Confirm {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "flag beats environment", args: []string{"--environments", "testdata/environments.yaml", "--env", "staging", "--profile", "mine", "website"},
			check: func(t *testing.T, c *Config) {
				if c.Profile != "mine" {
					t.Errorf("profile %q", c.Profile)
				}
			}},
		{name: "environment topic mismatch", args: []string{"--environments", "testdata/environments.yaml", "--env", "production", "--topic-arn", topic, "website"},
			wantErr: "--env production targets topic arn:aws:sns:eu-west-1:210987654321:deploy-broker (testdata/environments.yaml), but --topic-arn gives topic " + topic + ": the environment decides the target; drop --topic-arn, nothing was published"},
		// Issue 14.2: an exported topic (the local-mode env file) must not
		// silently override an explicit --env.
		{name: "ambient topic contradicts --env", args: []string{"--environments", "testdata/environments.yaml", "--env", "staging", "website"},
			env:     []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + topic},
			wantErr: "but DEPLOY_TRIGGER_TOPIC_ARN gives topic " + topic + ": the environment decides the target; drop DEPLOY_TRIGGER_TOPIC_ARN (unset DEPLOY_TRIGGER_TOPIC_ARN)"},
		{name: "ambient account contradicts --env", args: []string{"--environments", "testdata/environments.yaml", "--env", "staging", "website"},
			env: []string{"DEPLOY_TRIGGER_EXPECT_ACCOUNT=210987654321"}, wantErr: "--env staging expects account 111122223333"},
		{name: "ambient topic agreeing with --env", args: []string{"--environments", "testdata/environments.yaml", "--env", "staging", "website"},
			env: []string{"DEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:eu-west-1:111122223333:deploy-broker"},
			check: func(t *testing.T, c *Config) {
				if c.Source != "environment staging from testdata/environments.yaml" {
					t.Errorf("source %q", c.Source)
				}
			}},
		{name: "source of an ambient topic", args: []string{"website"}, env: []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + topic},
			check: func(t *testing.T, c *Config) {
				if c.Source != "topic from DEPLOY_TRIGGER_TOPIC_ARN" {
					t.Errorf("source %q", c.Source)
				}
			}},
		{name: "source of a topic flag", args: []string{"--topic-arn", topic, "website"},
			check: func(t *testing.T, c *Config) {
				if c.Source != "topic from --topic-arn" {
					t.Errorf("source %q", c.Source)
				}
			}},
		{name: "no environments file", args: []string{"--env", "production", "website"}, env: []string{"HOME=/nonexistent"},
			wantErr: `environment "production" was asked for, but no environments file was found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			getenv := envOf(tt.env...)
			cli, err := parseCLI(tt.args, getenv, &out, &errb)
			var c *Config
			if err == nil {
				c, err = resolve(cli, getenv)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	_, err := parseCLI([]string{"--help"}, envOf(), &out, &errb)
	if !errors.Is(err, errHelpShown) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Examples:", "deploy-trigger --env production website version=1.4.2", "($DEPLOY_TRIGGER_TOPIC_ARN)", "--dry-run", "--role-arn"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if _, err := parseCLI([]string{"--version"}, envOf(), &out, &errb); !errors.Is(err, errHelpShown) || !strings.HasPrefix(out.String(), "deploy-trigger ") {
		t.Fatalf("version: err = %v, out %q", err, out.String())
	}
	// What -ldflags -X stamps in (Makefile, .goreleaser.yaml) is printed.
	defer func(v, c, d string) { Version, Commit, Date = v, c, d }(Version, Commit, Date)
	Version, Commit, Date = "v1.2.3", "0123456789abcdef0123", "2026-11-30T17:00:00Z"
	out.Reset()
	parseCLI([]string{"--version"}, envOf(), &out, &errb)
	want := "deploy-trigger v1.2.3 (commit 0123456789ab, built 2026-11-30T17:00:00Z, " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}

func TestRunUsageErrorExitCode(t *testing.T) {
	var out, errb bytes.Buffer
	err := Run(t.Context(), []string{"website", "version"}, envOf("DEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:eu-west-1:123456789012:b"), strings.NewReader(""), &out, &errb, nil)
	if code := codeOf(err); code != 240 {
		t.Fatalf("code = %d (%v)", code, err)
	}
	if got := errb.String(); got != "deploy-trigger: error: parameter \"version\" is not in key=value form: write it as version=VALUE (see deploy-trigger jobs for the job's parameters)\n" {
		t.Errorf("stderr = %q", got)
	}
}

func TestRequesterFromEnv(t *testing.T) {
	gh := requesterFromEnv(envOf("GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/app", "GITHUB_REF=refs/heads/main", "GITHUB_SHA=abc",
		"GITHUB_ACTOR=alice", "GITHUB_RUN_ID=42", "GITHUB_RUN_ATTEMPT=2", "GITHUB_WORKFLOW=deploy", "GITHUB_SERVER_URL=https://github.example"), "runner-1")
	if gh.CI != "github-actions" || gh.RunURL != "https://github.example/acme/app/actions/runs/42" || gh.Build != "42.2" || gh.Actor != "alice" || gh.SHA != "abc" {
		t.Errorf("github = %+v", gh)
	}
	if s := sessionName(gh); s != "gha-acme-app-42.2" {
		t.Errorf("session name %q", s)
	}
	j := requesterFromEnv(envOf("JENKINS_URL=https://ci/", "BUILD_URL=https://ci/job/web/7/", "JOB_NAME=deploy/web", "BUILD_NUMBER=7", "GIT_COMMIT=def", "GIT_BRANCH=origin/main"), "agent")
	if j.CI != "jenkins" || j.Pipeline != "deploy/web" || j.Build != "7" || j.RunURL != "https://ci/job/web/7/" || j.SHA != "def" || j.Ref != "origin/main" {
		t.Errorf("jenkins = %+v", j)
	}
	if s := sessionName(j); s != "jenkins-deploy-web-7" {
		t.Errorf("session name %q", s)
	}
	l := requesterFromEnv(envOf("USER=bob"), "laptop\x07")
	if l.CI != "local" || l.Actor != "bob" || l.Host != "laptop " {
		t.Errorf("local = %+v", l)
	}
}

// help, version and completion are commands, not job names: nothing is
// published, and no topic is needed.
func TestCommandsAreNotJobs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"Usage: deploy-trigger", "Commands"}},
		{[]string{"version"}, []string{"deploy-trigger "}},
		{[]string{"completion", "bash"}, []string{"complete -F _deploy_trigger deploy-trigger", "--env", "--output)", "json"}},
		{[]string{"completion", "zsh"}, []string{"#compdef deploy-trigger", "'--env[env]:environment:_deploy_trigger_names __envs'", "'--dry-run[dry-run]' ", "(auto plain terminal github json)"}},
		{[]string{"completion", "fish"}, []string{"complete -c deploy-trigger -s e -l env -x", "complete -c deploy-trigger -l output -x -a"}},
	} {
		var out, errb bytes.Buffer
		// A topic is set: were the command read as a job, it would be published.
		err := Run(t.Context(), tc.args, envOf("DEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:eu-west-1:123456789012:b", "AWS_ENDPOINT_URL=http://127.0.0.1:1"),
			strings.NewReader(""), &out, &errb, nil)
		if err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, errb.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
		if shell := tc.args[len(tc.args)-1]; tc.args[0] == "completion" {
			if path, err := exec.LookPath(shell); err == nil {
				if b, err := exec.Command(path, "-n", "-c", out.String()).CombinedOutput(); err != nil {
					t.Errorf("%s -n rejects the completion script: %v\n%s", shell, err, b)
				}
			}
		}
	}
	var out, errb bytes.Buffer
	if err := Run(t.Context(), []string{"completion", "tcsh"}, envOf(), strings.NewReader(""), &out, &errb, nil); codeOf(err) != 240 {
		t.Errorf("completion tcsh: %v", err)
	}
}

// Issue 14.12: --color is never|auto|always (a bare --color is always, as
// before); DEPLOY_TRIGGER_COLOR=true still works; the key=value hint names
// what was typed.
func TestColorFlagAndParamHint(t *testing.T) {
	const topic = "arn:aws:sns:eu-west-1:123456789012:deploy-broker"
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--color", "website"}, nil, "always"},
		{[]string{"--color=never", "website"}, nil, "never"},
		{[]string{"website"}, nil, "auto"},
		{[]string{"website"}, []string{"DEPLOY_TRIGGER_COLOR=true"}, "always"},
	} {
		getenv := envOf(append(tc.env, "DEPLOY_TRIGGER_TOPIC_ARN="+topic)...)
		cli, err := parseCLI(tc.args, getenv, &bytes.Buffer{}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := resolve(cli, getenv)
		if err != nil || c.Color != tc.want {
			t.Errorf("%v %v: color %q (%v), want %q", tc.args, tc.env, c.Color, err, tc.want)
		}
	}
	if _, err := parseParams([]string{"1.4.2"}); err == nil || !strings.Contains(err.Error(), "write it as NAME=1.4.2") {
		t.Errorf("hint for a bare value: %v", err)
	}
}

// Issue 14.7: with --catalogue, the job and its values are checked as the
// broker checks them, before anything is published; jobs lists them; a
// dry run says what it checked.
func TestCatalogueChecksAndJobs(t *testing.T) {
	const topic = "arn:aws:sns:eu-west-1:123456789012:deploy-broker"
	getenv := envOf("DEPLOY_TRIGGER_TOPIC_ARN=" + topic)
	cli, err := parseCLI([]string{"--catalogue", "../../examples/broker.yaml", "website", "version=abc", "extra=1"}, getenv, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = resolve(cli, getenv)
	if err == nil || !strings.Contains(err.Error(), `parameter "extra" is not declared`) || !strings.Contains(err.Error(), `"version"`) {
		t.Errorf("version=abc extra=1: %v", err)
	}
	cli, _ = parseCLI([]string{"--catalogue", "../../examples/broker.yaml", "website", "version=1.4.2"}, getenv, &bytes.Buffer{}, &bytes.Buffer{})
	c, err := resolve(cli, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if s := dryRunChecks(c); !strings.Contains(s, "against the catalogue ../../examples/broker.yaml") {
		t.Errorf("dry run checks: %s", s)
	}
	c.Catalogue = nil
	if s := dryRunChecks(c); strings.Contains(s, "catalogue") {
		t.Errorf("dry run checks without a catalogue (the broker's published one is checkDeployed's): %s", s)
	}
	var out bytes.Buffer
	if err := Run(t.Context(), []string{"jobs", "--catalogue", "../../examples/broker.yaml"}, envOf(), strings.NewReader(""), &out, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"website — Publish the marketing website", "version=STRING  (pattern [0-9]+\\.[0-9]+\\.[0-9]+; at most 32 characters; required)", `colour=ENUM  (one of blue, green; default "blue")`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("jobs lacks %q:\n%s", want, out.String())
		}
	}
}
