package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// parseJob parses a configuration with one job "j" whose body is job (YAML
// flow mapping contents).
func parseJob(t *testing.T, job string) (*Config, error) {
	t.Helper()
	return Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  j: {" + job + "}\n"))
}

func mustJob(t *testing.T, job string) Job {
	t.Helper()
	c, err := parseJob(t, job)
	if err != nil {
		t.Fatalf("%s: %v", job, err)
	}
	return c.Jobs["j"]
}

func wantConfigError(t *testing.T, job, want string) {
	t.Helper()
	_, err := parseJob(t, job)
	if err == nil {
		t.Errorf("%s: accepted, want an error containing %q", job, want)
	} else if !strings.Contains(err.Error(), want) {
		t.Errorf("%s:\n error %v\n want it to contain %q", job, err, want)
	}
}

func TestLeadingDashIsRefusedWhereItBeginsAnArgument(t *testing.T) {
	j := mustJob(t, `command: [/bin/deploy, "{{v}}", "--flag={{v}}", "{{e}}{{v}}"], params: {v: {type: string, pattern: '[a-z0-9.-]+', required: true, secret: true}, e: {type: string, pattern: '[a-z]*', default: ""}}`)
	for _, c := range []struct {
		params map[string]string
		want   string // "" for accepted
	}{
		{map[string]string{"v": "1.4-2"}, ""},
		{map[string]string{"v": "--help"}, `parameter "v" may not start with '-': it begins an argument of the command`},
		{map[string]string{"v": "-rf"}, `parameter "v" may not start with '-'`},
		{map[string]string{"v": "-"}, `parameter "v" may not start with '-'`},
	} {
		argv, err := j.Render(c.params)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.params, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: argv %q, err %v; want %q", c.params, argv, err, c.want)
		case c.want != "":
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Errorf("%v: %T is not a ParamError", c.params, err)
			}
			if strings.Contains(err.Error(), c.params["v"]+" ") || strings.Contains(err.Error(), "help") {
				t.Errorf("the reason echoes the (secret) value: %v", err)
			}
		}
	}
	// After the catalogue's own text a leading '-' is data: "--flag=--help",
	// "x--help".
	j = mustJob(t, `command: [/bin/deploy, "--flag={{v}}", "x{{v}}", "{{e}}{{v}}"], params: {v: {type: string, pattern: '[a-z0-9.-]+', required: true}, e: {type: string, pattern: '[a-z]*', default: ""}}`)
	if _, err := j.Render(map[string]string{"v": "--help", "e": "x"}); err != nil {
		t.Errorf("inside an argument: %v", err)
	}
	// An empty value before it leaves the dash at the start.
	if _, err := j.Render(map[string]string{"v": "--help"}); err == nil || !strings.Contains(err.Error(), `"v" may not start`) {
		t.Errorf("after an empty value: %v", err)
	}
}

func TestNegativeIntNeedsAllowLeadingDash(t *testing.T) {
	j := mustJob(t, `command: [/bin/deploy, "{{n}}", "--n={{n}}"], params: {n: {type: int, required: true}}`)
	if _, err := j.Render(map[string]string{"n": "-5"}); err == nil || !strings.Contains(err.Error(), `parameter "n" may not start with '-'`) {
		t.Errorf("-5 as a whole argument: %v", err)
	}
	j = mustJob(t, `command: [/bin/deploy, "--n={{n}}"], params: {n: {type: int, required: true}}`)
	if argv, err := j.Render(map[string]string{"n": "-5"}); err != nil || argv[1] != "--n=-5" {
		t.Errorf("-5 inside an argument: %q, %v", argv, err)
	}
	j = mustJob(t, `command: [/bin/deploy, "{{n}}"], params: {n: {type: int, min: -10, max: 10, allow_leading_dash: true, default: "-1"}}`)
	if argv, err := j.Render(map[string]string{"n": "-5"}); err != nil || argv[1] != "-5" {
		t.Errorf("opted in: %q, %v", argv, err)
	}
	if argv, err := j.Render(nil); err != nil || argv[1] != "-1" {
		t.Errorf("opted-in default: %q, %v", argv, err)
	}
	if _, err := j.Render(map[string]string{"n": "-11"}); err == nil || !strings.Contains(err.Error(), "at least -10") {
		t.Errorf("opted in, below min: %v", err)
	}
}

func TestCatalogueValuesWithLeadingDash(t *testing.T) {
	wantConfigError(t, `command: [/bin/deploy, "{{n}}"], params: {n: {type: int, default: "-1"}}`,
		`parameter "n": default "-1" starts with '-' and {{n}} begins command[1]`)
	wantConfigError(t, `command: [/bin/deploy, "{{m}}"], params: {m: {type: enum, values: [fast, --slow], default: fast}}`,
		`parameter "m": value "--slow" starts with '-' and {{m}} begins command[1], where`)
	mustJob(t, `command: [/bin/deploy, "{{m}}"], params: {m: {type: enum, values: [-v, -q], allow_leading_dash: true, default: -q}}`)
	mustJob(t, `command: [/bin/deploy, "--mode={{m}}"], params: {m: {type: enum, values: [fast, --slow], default: --slow}}`)
}

func TestOptionalParameterNeedsADefault(t *testing.T) {
	for _, typ := range []string{"{type: string, pattern: '[a-z]+'}", "{type: int, min: 1}", "{type: bool}", "{type: enum, values: [a, b]}"} {
		wantConfigError(t, `command: [/bin/deploy, "--x={{x}}"], params: {x: `+typ+`}`,
			`parameter "x": an optional parameter needs a default: set required: true, or give the default`)
	}
	mustJob(t, `command: [/bin/deploy, "--x={{x}}"], params: {x: {type: int, required: true}}`)
	mustJob(t, `command: [/bin/deploy, "--x={{x}}"], params: {x: {type: bool, default: "false"}}`)
	mustJob(t, `command: [/bin/deploy, "--x={{x}}"], params: {x: {type: string, pattern: '[a-z]*', default: ""}}`)
	// An empty default is checked like any value.
	wantConfigError(t, `command: [/bin/deploy, "--x={{x}}"], params: {x: {type: string, pattern: '[a-z]+', default: ""}}`, `default "" is invalid: does not match the pattern`)
	wantConfigError(t, `command: [/bin/deploy, "--x={{x}}"], params: {x: {type: int, default: ""}}`, `default "" is invalid: must be a whole number`)
	// A declaration that did not come through Parse never renders "" either.
	j := Job{Command: []string{"/bin/deploy", "{{x}}"}, Params: map[string]Param{"x": {Type: TypeString, Pattern: "[a-z]+"}}}
	if _, err := j.Render(nil); err == nil || !strings.Contains(err.Error(), `parameter "x" is required`) {
		t.Errorf("hand-built job: %v", err)
	}
	if _, err := j.Render(map[string]string{"x": "A;B"}); err == nil || !strings.Contains(err.Error(), "does not match the pattern") {
		t.Errorf("hand-built job, pattern not compiled by Parse: %v", err)
	}
}

func TestShellCommandStringMayNotHoldAParameter(t *testing.T) {
	const p = `params: {v: {type: string, pattern: '.+', required: true}}`
	for _, cmd := range []string{
		`[/bin/sh, -c, "deploy {{v}}"]`,
		`[sh, -c, "{{v}}"]`,
		`[/bin/bash, -ec, "deploy {{v}}"]`,
		`[/usr/bin/bash, -xc, "deploy {{v}}"]`,
		`[/bin/bash, -e, -c, "deploy {{v}}"]`,
		`[/bin/bash, -euo, pipefail, -c, "deploy {{v}}"]`,
		`[/bin/sh, -c, -o, pipefail, "deploy {{v}}"]`,
		`[/bin/bash, --norc, -c, "deploy {{v}}"]`,
		`[/bin/dash, -c, "deploy {{v}}"]`,
		`[/bin/ash, -c, "deploy {{v}}"]`,
		`[/bin/zsh, -c, "deploy {{v}}"]`,
		`[/bin/ksh, -c, "deploy {{v}}"]`,
		`[/usr/bin/env, bash, -c, "deploy {{v}}"]`,
		`[/usr/bin/env, -i, PATH=/bin, sh, -ec, "deploy {{v}}"]`,
		`[/usr/bin/env, -u, HOME, --, sh, -c, "deploy {{v}}"]`,
		`[/bin/busybox, sh, -c, "deploy {{v}}"]`,
		`[/usr/bin/fish, "--command=deploy {{v}}"]`,
		`[/usr/bin/fish, --command, "deploy {{v}}"]`,
	} {
		wantConfigError(t, "command: "+cmd+", "+p, `is the command string of`)
	}
	_, err := parseJob(t, `command: [/bin/sh, -c, "deploy {{v}}"], `+p)
	if err == nil || !strings.Contains(err.Error(), `command[2] is the command string of sh -c, and may not contain a parameter`) ||
		!strings.Contains(err.Error(), `["/bin/sh", "-c", "deploy --version \"$1\"", "sh", "{{version}}"]`) {
		t.Errorf("message: %v", err)
	}
	// The shell's options, its script and the program env or busybox runs
	// are the catalogue's too.
	for cmd, want := range map[string]string{
		`[/bin/sh, "{{v}}"]`:                        `command[1] is the script sh runs`,
		`[/bin/bash, -e, "{{v}}", x]`:               `command[2] is the script bash runs`,
		`[/bin/sh, "-{{v}}", x]`:                    `command[1] is an option of sh`,
		`[/bin/sh, -o, "{{v}}", -c, "deploy"]`:      `command[2] is the argument of sh -o`,
		`[/usr/bin/env, "{{v}}", x]`:                `command[1] is the program env runs`,
		`[/usr/bin/env, -S, "sh -c {{v}}"]`:         `command[2] is the argument of env -S`,
		`[/usr/bin/env, "{{v}}=1", sh, -c, "x"]`:    `sets an environment variable whose name holds a parameter`,
		`[/bin/busybox, "{{v}}", x]`:                `command[1] is the busybox applet`,
		`[/usr/bin/env, "--chdir={{v}}", sh, x, y]`: `command[1] is an option of env`,
	} {
		wantConfigError(t, "command: "+cmd+", "+p, want)
	}
	for _, cmd := range []string{
		`[/bin/sh, -c, "deploy --version \"$1\"", sh, "{{v}}"]`,
		`[/bin/bash, -euo, pipefail, -c, "deploy \"$@\"", bash, "--version={{v}}", "{{v}}"]`,
		`[/bin/sh, jobs/website.sh, --version, "{{v}}"]`,
		`[/bin/sh, -e, jobs/website.sh, "{{v}}"]`,
		`[/bin/sh, -s, "{{v}}"]`,
		`[/usr/bin/env, "VERSION={{v}}", sh, -c, "deploy \"$VERSION\""]`,
		`[/usr/bin/env, python3, -c, "import sys", "{{v}}"]`,
		`[/usr/local/bin/deploy, -c, "{{v}}"]`,
		`[/bin/busybox, wget, "{{v}}"]`,
	} {
		mustJob(t, "command: "+cmd+", "+p)
	}
}

func TestControlAndFormatCharactersAreRefused(t *testing.T) {
	j := mustJob(t, `command: [/bin/deploy, "--v={{v}}"], params: {v: {type: string, pattern: '.+', required: true, secret: true}}`)
	for v, want := range map[string]string{
		"a\nb":             "(U+000A, a line break)",
		"a\x1b[31m":        "(U+001B)",
		"a\u0085b":         "(U+0085)", // NEL, a C1 control
		"a\u009bb":         "(U+009B)", // CSI
		"main\u202egnp.sh": "(U+202E, an invisible format character",
		"a\u2066b\u2069":   "(U+2066",
		"a\u200bb":         "(U+200B",
		"\ufeffa":          "(U+FEFF",
		"a\U000E0041":      "(U+E0041",
		"a\u2028b":         "(U+2028, a line break)",
		"a\u2029b":         "(U+2029, a line break)",
		"a\xffb":           "is not valid UTF-8",
	} {
		_, err := j.Render(map[string]string{"v": v})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", v, err, want)
		}
		if err != nil && strings.Contains(err.Error(), v) {
			t.Errorf("%q: the reason echoes the value: %v", v, err)
		}
	}
	for _, v := range []string{"Zoë", "Ångström-1.2", "נשר", "🚀", "a\u00a0b"} {
		if _, err := j.Render(map[string]string{"v": v}); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	wantConfigError(t, `command: [/bin/deploy, "--v={{v}}"], params: {v: {type: string, pattern: '.+', default: "a\u202eb"}}`, "contains a control character (U+202E")
}

func TestPolicyValidation(t *testing.T) {
	const cmd = `command: [/bin/deploy], `
	for policy, want := range map[string]string{
		`{actions: ["s3:*"], resources: ["arn:aws:s3:::b/*"]}`:                                                            `policy[0] action "s3:*" grants a whole service`,
		`{actions: ["*"], resources: ["arn:aws:s3:::b/*"]}`:                                                               `action "*" grants a whole service`,
		`{effect: Deny, actions: ["*"], resources: ["*"]}`:                                                                `action "*" grants a whole service`,
		`{actions: ["s3:**"], resources: ["arn:aws:s3:::b/*"]}`:                                                           `action "s3:**" has a wildcard inside it`,
		`{actions: ["iam:*Role*"], resources: ["arn:aws:iam::123456789012:role/x"]}`:                                      `action "iam:*Role*" has a wildcard inside it`,
		`{actions: ["s3:*Object"], resources: ["arn:aws:s3:::b/*"]}`:                                                      `action "s3:*Object" has a wildcard inside it`,
		`{actions: ["s3:Get?bject"], resources: ["arn:aws:s3:::b/*"]}`:                                                    `action "s3:Get?bject" has a wildcard inside it`,
		`{actions: ["s3"], resources: ["arn:aws:s3:::b/*"]}`:                                                              `action "s3" is not "service:Action"`,
		`{actions: ["s3:Get Object"], resources: ["arn:aws:s3:::b/*"]}`:                                                   `action "s3:Get Object" is not "service:Action"`,
		`{actions: ["s3:GetObject"], resources: ["*"]}`:                                                                   `policy[0] grants resource "*": name the resources' ARNs`,
		`{actions: ["s3:GetObject"], resources: ["*"], wildcard_resource_reason: " "}`:                                    `grants resource "*"`,
		`{actions: ["s3:GetObject"], resources: ["b/*"]}`:                                                                 `resource "b/*" must be an ARN`,
		`{actions: ["s3:GetObject"], resources: ["arn:*"]}`:                                                               `grants resource "*"`,
		`{actions: ["s3:GetObject"], resources: ["arn:aws:*:*:*:*"]}`:                                                     `grants resource "*"`,
		`{actions: ["s3:GetObject"], resources: ["arn:aws:s3:::*"]}`:                                                      `grants resource "*"`,
		`{actions: ["iam:PassRole"], resources: ["arn:aws:iam::*:role/*"]}`:                                               `grants resource "*"`,
		`{actions: ["s3:GetObject"], resources: ["arn:aws:s3:::b"], wildcard_resource_reason: x}`:                         `has a wildcard_resource_reason but no resource "*"`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {"": {"aws:RequestedRegion": eu-west-1}}}`:              `condition operator "" is not an IAM condition operator`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {"String Equals": {"aws:RequestedRegion": eu-west-1}}}`: `condition operator "String Equals"`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {StringEquals: {}}}`:                                    `condition StringEquals names no condition key`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {StringEquals: {"": x}}}`:                               `condition StringEquals has an empty condition key`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {StringEquals: {"aws:RequestedRegion": null}}}`:         `condition StringEquals "aws:RequestedRegion" must have a string, number or boolean value`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {StringEquals: {"aws:RequestedRegion": []}}}`:           `must have a string, number or boolean value`,
		`{actions: ["s3:GetObject"], resources: ["*"], condition: {StringEquals: {"aws:RequestedRegion": {a: b}}}}`:       `must have a string, number or boolean value`,
	} {
		wantConfigError(t, cmd+"policy: ["+policy+"]", want)
	}
	// IAM statement ids are letters and digits only: refused when the
	// catalogue is read, not first when the stack is synthesized.
	wantConfigError(t, cmd+`policy: [{sid: "read-site", actions: ["s3:GetObject"], resources: ["arn:aws:s3:::b/*"]}]`, `policy[0] sid "read-site" may hold only letters and digits`)
	mustJob(t, cmd+`policy: [{sid: ReadSite2, actions: ["s3:GetObject"], resources: ["arn:aws:s3:::b/*"]}]`)
	for _, arn := range []string{"AdministratorAccess", "arn:aws:iam::aws:role/x", "arn:aws:iam::12345:policy/x", "arn:aws:iam::aws:policy/", "arn:aws:s3:::b", "*"} {
		wantConfigError(t, cmd+`managed_policies: ["`+arn+`"]`, `managed policy "`+arn+`" must be an IAM policy ARN`)
	}
	for _, policy := range []string{
		`{actions: ["s3:Get*", "s3:PutObject"], resources: ["arn:aws:s3:::b/*"]}`,
		`{effect: Deny, actions: ["s3:*", "iam:*Role*", "s3:Get?bject"], resources: ["*"]}`,
		`{actions: ["ec2:DescribeInstances"], resources: ["*"], condition: {StringEquals: {"aws:RequestedRegion": [eu-west-1, eu-west-2]}, Bool: {"aws:SecureTransport": true}}}`,
		`{actions: ["ec2:DescribeInstances"], resources: ["*"], wildcard_resource_reason: "ec2:DescribeInstances has no resource-level permissions"}`,
		`{actions: ["s3:ListBucket"], resources: ["arn:aws:s3:::b"], condition: {"ForAnyValue:StringLike": {"s3:prefix": ["site/*"]}, NumericLessThan: {"s3:max-keys": 10}}}`,
	} {
		mustJob(t, cmd+"policy: ["+policy+"]")
	}
	mustJob(t, cmd+`managed_policies: ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/service-role/AWSLambdaRole", "arn:aws-us-gov:iam::123456789012:policy/path/deploy-x"]`)
}

// deploy-trigger reads its commands (help, version, …, approve, reject)
// where a job name would stand: no job may be called so.
func TestReservedJobNames(t *testing.T) {
	for _, name := range []string{"help", "version", "completion", "jobs", "runs", "attach", "approve", "reject"} {
		_, err := Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  " + name + ": {command: [/bin/x]}\n"))
		if err == nil || !strings.Contains(err.Error(), "is a deploy-trigger command") {
			t.Errorf("job %q: %v", name, err)
		}
	}
}

// A job's policy may not grant what every job role is denied on the
// broker's own resources (broker "b"): registering revisions in its task
// definition families, changing, reading or deleting its run queues, the
// run ledger, the published view table, the warm inboxes, running its task
// definitions, passing its roles.
func TestPolicyMayNotGrantWhatTheBrokerGuards(t *testing.T) {
	const cmd = `command: [/bin/deploy], `
	for policy, want := range map[string]string{
		`{actions: ["ecs:Register*"], resources: ["arn:aws:ecs:eu-west-1:123456789012:task-definition/b-*"]}`:                        `grants ecs:Register* on "arn:aws:ecs:eu-west-1:123456789012:task-definition/b-*"`,
		`{actions: ["sqs:ReceiveMessage"], resources: ["arn:aws:sqs:eu-west-1:123456789012:b-*"]}`:                                   `which covers the broker's run queues`,
		`{actions: ["sqs:Untag*"], resources: ["arn:aws:sqs:*:123456789012:*.fifo"]}`:                                                `grants sqs:Untag*`,
		`{actions: ["sqs:SetQueueAttributes"], resources: ["arn:aws:sqs:eu-west-1:123456789012:b-01JDRUN0000000000000000000.fifo"]}`: `covers the broker's run queues`,
		`{actions: ["dynamodb:PutItem"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/b-Ledger*"]}`:                    `which covers the run ledger`,
		`{actions: ["dynamodb:DeleteTable"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/*"]}`:                        `which covers the run ledger`,
		// security review F3: the published view table (its policy, its
		// items, the table, its indexes and streams), the warm inboxes
		`{actions: ["dynamodb:PutResourcePolicy"], resources: ["arn:aws:dynamodb:*:123456789012:table/b-view"]}`:           `which covers the broker's published view table`,
		`{actions: ["dynamodb:UpdateItem"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/*-view"]}`:          `grants dynamodb:UpdateItem on "arn:aws:dynamodb:eu-west-1:123456789012:table/*-view", which covers the broker's published view table`,
		`{actions: ["dynamodb:GetRecords"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/b-view/stream/*"]}`: `which covers the broker's published view table`,
		`{actions: ["dynamodb:Query"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/b-Led*/index/*"]}`:       `which covers the run ledger`,
		`{actions: ["sqs:GetQueueUrl"], resources: ["arn:aws:sqs:eu-west-1:123456789012:*-warm-*"]}`:                       `which covers the broker's warm runners' inboxes`,
		`{actions: ["sqs:CreateQueue"], resources: ["*"], wildcard_resource_reason: "creates queues"}`:                     `which covers the broker's warm runners' inboxes`,
		// review finding 9: another job's pinned revision, or any task under
		// another job's role
		`{actions: ["ecs:RunTask"], resources: ["arn:aws:ecs:eu-west-1:123456789012:task-definition/b-*"]}`: `grants ecs:RunTask on "arn:aws:ecs:eu-west-1:123456789012:task-definition/b-*", which covers the broker's task definition families`,
		`{actions: ["ecs:StartTask"], resources: ["arn:aws:ecs:eu-west-1:123456789012:task-definition/*"]}`: `grants ecs:StartTask`,
		`{actions: ["iam:PassRole"], resources: ["*"], wildcard_resource_reason: "passes task roles"}`:      `grants iam:PassRole on "*", which covers the broker's roles`,
		`{actions: ["iam:PassRole"], resources: ["arn:aws:iam::123456789012:role/*"]}`:                      `which covers the broker's roles`,
		`{actions: ["iam:PassRole"], resources: ["arn:aws:iam::123456789012:role/deploy-broker/b/*"]}`:      `which covers the broker's roles`,
		`{actions: ["iam:Pass*"], resources: ["arn:aws:iam::123456789012:role/deploy-broker/*"]}`:           `grants iam:Pass*`,
		// issue 22: the dispatcher, the broker cluster and its runs, the run log
		`{actions: ["lambda:InvokeFunction"], resources: ["arn:aws:lambda:eu-west-1:123456789012:function:b-*"]}`:         `which covers the dispatcher function`,
		`{actions: ["ecs:StopTask"], resources: ["arn:aws:ecs:eu-west-1:123456789012:task/b/*"]}`:                         `which covers the broker cluster's tasks`,
		`{actions: ["ecs:ExecuteCommand"], resources: ["arn:aws:ecs:*:123456789012:cluster/*"]}`:                          `which covers the broker cluster`,
		`{actions: ["logs:PutLogEvents"], resources: ["arn:aws:logs:eu-west-1:123456789012:log-group:/deploy-broker/*"]}`: `which covers the run log group`,
		// security review: publishing run requests to the broker's topic
		`{actions: ["sns:Publish"], resources: ["arn:aws:sns:eu-west-1:123456789012:b"]}`: `which covers the broker's topic (run requests)`,
		`{actions: ["sns:Pub*"], resources: ["arn:aws:sns:*:123456789012:b*"]}`:           `grants sns:Pub*`,
	} {
		wantConfigError(t, cmd+"policy: ["+policy+"]", want)
	}
	for _, policy := range []string{
		// the job's own resources
		`{actions: ["ecs:RegisterTaskDefinition"], resources: ["arn:aws:ecs:eu-west-1:123456789012:task-definition/web-*"]}`,
		// a job that deploys ECS services: RegisterTaskDefinition may have
		// no resource-level permissions, so "*" is what it can name; the
		// dispatcher's pinned revisions keep the broker's families safe
		`{actions: ["ecs:RegisterTaskDefinition"], resources: ["*"], wildcard_resource_reason: "no resource-level permissions"}`,
		`{actions: ["sqs:ReceiveMessage", "sqs:DeleteMessage"], resources: ["arn:aws:sqs:eu-west-1:123456789012:orders"]}`,
		`{actions: ["dynamodb:PutItem"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/orders"]}`,
		`{actions: ["dynamodb:PutItem"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/orders-view"]}`,
		`{actions: ["dynamodb:Query"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/*"]}`,
		`{actions: ["sqs:ReceiveMessage"], resources: ["arn:aws:sqs:eu-west-1:123456789012:web-warm-*"]}`,
		`{actions: ["sqs:ListQueues"], resources: ["*"], wildcard_resource_reason: "lists the account's queues"}`,
		`{actions: ["dynamodb:ListTables"], resources: ["*"], wildcard_resource_reason: "no resource-level permissions"}`,
		`{actions: ["sqs:SendMessage"], resources: ["arn:aws:sqs:eu-west-1:123456789012:orders.fifo"]}`,
		`{actions: ["iam:PassRole"], resources: ["arn:aws:iam::123456789012:role/web-service-task"]}`,
		`{actions: ["ecs:RunTask"], resources: ["arn:aws:ecs:eu-west-1:123456789012:task-definition/web-migrate:*"]}`,
		`{actions: ["lambda:UpdateFunctionCode"], resources: ["arn:aws:lambda:eu-west-1:123456789012:function:web-api"]}`,
		`{actions: ["ecs:UpdateService"], resources: ["arn:aws:ecs:eu-west-1:123456789012:service/web/*"]}`,
		`{actions: ["logs:CreateLogGroup"], resources: ["arn:aws:logs:eu-west-1:123456789012:log-group:/web/*"]}`,
		`{actions: ["sns:Publish"], resources: ["arn:aws:sns:eu-west-1:123456789012:web-alerts"]}`,
		`{actions: ["lambda:UpdateFunctionCode", "ecs:StopTask", "logs:PutLogEvents"], resources: ["*"], wildcard_resource_reason: "deploys functions, services and their logs"}`,
		// a Deny takes away
		`{effect: Deny, actions: ["sqs:*"], resources: ["*"]}`,
	} {
		mustJob(t, cmd+"policy: ["+policy+"]")
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"b-*", "b-01JD.fifo", true}, {"*.fifo", "b-x.fifo", true}, {"b-??", "b-01", true}, {"b-??", "b-012", false},
		{"*", "", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}, {"web-*", "b-job:1", false},
	} {
		if got := wildcardMatch(c.p, c.s); got != c.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// Issue 14.9: a typo in the broker configuration names the file, the line,
// the key, where it stands, the valid keys and the closest one.
func TestUnknownKeyIsLocated(t *testing.T) {
	path := t.TempDir() + "/broker.yaml"
	src := "broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner:\n  image: i\n  grase: 30s\njobs:\n  j: {command: [/bin/x]}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := "broker configuration " + path + `:5: unknown key "grase" in runner; valid keys: grace, heartbeat, image; did you mean "grace"?`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// Issue 14.10: what synth would refuse, local mode refuses too, at load.
func TestOneSetOfRules(t *testing.T) {
	_, err := Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i, grace: 300s}\njobs:\n  j: {command: [/bin/x]}\n"))
	if err == nil || !strings.Contains(err.Error(), "runner.grace 5m0s is too long") || !strings.Contains(err.Error(), "at most 1m50s") {
		t.Errorf("grace 300s: %v", err)
	}
	if _, err := Parse([]byte("broker: {name: b}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i, grace: 110s}\njobs:\n  j: {command: [/bin/x]}\n")); err != nil {
		t.Errorf("grace 110s: %v", err)
	}
	// A negative min nobody could pass: the value begins an argument.
	wantConfigError(t, `command: [/bin/deploy, "{{n}}"], params: {n: {type: int, min: -10, max: 10, required: true}}`,
		`parameter "n": min -10 allows negative values, but {{n}} begins command[1], where a value starting with '-' is refused`)
	mustJob(t, `command: [/bin/deploy, "--n={{n}}"], params: {n: {type: int, min: -10, max: 10, required: true}}`)
	mustJob(t, `command: [/bin/deploy, "{{n}}"], params: {n: {type: int, min: -10, max: 10, required: true, allow_leading_dash: true}}`)
}

func TestRunLogKey(t *testing.T) {
	parse := func(key string) error {
		_, err := Parse([]byte("broker: {name: b, run_log_key: \"" + key + "\"}\ntrusted_principals: [\"123456789012\"]\nrunner: {image: i}\njobs:\n  j: {command: [/bin/true]}\n"))
		return err
	}
	for _, ok := range []string{"", "create", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"} {
		if err := parse(ok); err != nil {
			t.Errorf("run_log_key %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"alias/logs", "arn:aws:kms:eu-west-1:123456789012:alias/logs", "yes"} {
		if err := parse(bad); err == nil || !strings.Contains(err.Error(), "broker.run_log_key") {
			t.Errorf("run_log_key %q: %v, want a refusal", bad, err)
		}
	}
}
