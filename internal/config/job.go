package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Job is one catalogue entry.
type Job struct {
	Description string `yaml:"description,omitempty"`
	// Image overrides Runner.Image; it must run the runner as entrypoint.
	Image  string `yaml:"image,omitempty"`
	CPU    int    `yaml:"cpu"`
	Memory int    `yaml:"memory"`
	// Command is the argv the runner executes; "{{name}}" inside an element
	// is replaced by the parameter's value.
	Command []string         `yaml:"command"`
	Params  map[string]Param `yaml:"params,omitempty"`
	Timeout Duration         `yaml:"timeout"`
	// Environment is static environment for the job.
	Environment map[string]string `yaml:"environment,omitempty"`
	// Secrets maps environment variable names to Secrets Manager or SSM
	// parameter ARNs, injected by ECS; their values are redacted from output.
	Secrets map[string]string `yaml:"secrets,omitempty"`
	// Redact names further variables whose values must never leave the account.
	Redact []string `yaml:"redact,omitempty"`
	// Policy is the job's deployment permissions: its task role's statements.
	Policy []Statement `yaml:"policy,omitempty"`
	// ManagedPolicies are AWS managed or customer managed policy ARNs.
	ManagedPolicies []string `yaml:"managed_policies,omitempty"`
	// AllowedPrincipals, when set, are the only verified principals that may
	// run the job (identity.MatchPrincipal patterns: full role or user ARNs
	// with the account; an assumed-role session matches its role; session
	// name globs only as arn:P:sts::ACCOUNT:assumed-role/ROLE/GLOB, and
	// session names are chosen by the caller unless the role's trust policy
	// pins them). Empty: any trusted principal.
	AllowedPrincipals []string `yaml:"allowed_principals,omitempty"`
	// Governance: concurrency (governance.go).
	Governance `yaml:",inline"`
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var placeholderRE = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

var managedPolicyRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/[A-Za-z0-9+=,.@_/-]+$`)

func (j *Job) validate(name string) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if !protocol.ValidJobName(name) {
		bad("the name must be lower-case letters, digits and '-', at most %d characters", protocol.MaxJobNameLength)
	}
	if slices.Contains(protocol.ReservedJobNames, name) {
		bad("%q is a deploy-trigger command (%s): give the job another name", name, strings.Join(protocol.ReservedJobNames, ", "))
	}
	for _, p := range j.AllowedPrincipals {
		if err := identity.ValidatePattern(p); err != nil {
			bad("allowed_principals entry %q: %s (give a full role or user ARN with its account, e.g. arn:aws:iam::111122223333:role/github-deployer)", p, strings.TrimPrefix(err.Error(), "identity: "))
		}
	}
	if j.Image == "" {
		bad("no image: set image here or runner.image")
	}
	if len(j.Command) == 0 || j.Command[0] == "" {
		bad("command is empty: give the argv to run, e.g. [\"/usr/local/bin/deploy\", \"--version\", \"{{version}}\"]")
	}
	if len(j.Command) > 0 && placeholderRE.MatchString(j.Command[0]) {
		bad("command[0] may not contain a parameter: the program must be fixed by the catalogue")
	}
	for _, e := range checkShell(j.Command) {
		bad("%s", e)
	}
	if j.Timeout.D() < time.Second {
		bad("timeout %s is shorter than 1s", j.Timeout.D())
	}
	if !validFargateSize(j.CPU, j.Memory) {
		bad("cpu %d with memory %d MiB is not a Fargate size (e.g. 256/512, 512/1024, 1024/2048)", j.CPU, j.Memory)
	}
	used := map[string]bool{}
	for i, arg := range j.Command {
		for _, m := range placeholderRE.FindAllStringSubmatch(arg, -1) {
			if _, ok := j.Params[m[1]]; !ok {
				bad("command[%d] uses {{%s}} but params declares no %q", i, m[1], m[1])
			}
			used[m[1]] = true
		}
	}
	for _, pname := range sortedKeys(j.Params) {
		p := j.Params[pname]
		if !protocol.ValidParamName(pname) {
			bad("parameter name %q must be lower-case letters, digits and '_', starting with a letter", pname)
		}
		if !used[pname] {
			bad("parameter %q is declared but the command never uses {{%s}}", pname, pname)
		}
		for _, e := range p.compile() {
			bad("parameter %q: %s", pname, e)
		}
		j.Params[pname] = p
	}
	// A value that may begin an argv element must not start with '-' unless
	// the author allowed it: check what the catalogue itself supplies.
	for i, arg := range j.Command {
		for _, pname := range leadingParams(arg) {
			p, ok := j.Params[pname]
			if !ok || p.AllowLeadingDash {
				continue
			}
			if p.Type == TypeInt && p.Min != nil && *p.Min < 0 {
				bad("parameter %q: min %d allows negative values, but {{%s}} begins command[%d], where a value starting with '-' is refused, so no negative value could be passed; set allow_leading_dash: true, or min: 0", pname, *p.Min, pname, i)
			}
			if p.Default != nil && strings.HasPrefix(*p.Default, "-") {
				bad("parameter %q: default %q starts with '-' and {{%s}} begins command[%d], where the program would read it as an option; set allow_leading_dash: true if that is meant", pname, *p.Default, pname, i)
			}
			for _, v := range p.Values {
				if p.Type == TypeEnum && strings.HasPrefix(v, "-") {
					bad("parameter %q: value %q starts with '-' and {{%s}} begins command[%d], where the program would read it as an option; set allow_leading_dash: true if that is meant", pname, v, pname, i)
				}
			}
		}
	}
	for k := range j.Environment {
		if !envNameRE.MatchString(k) || strings.HasPrefix(k, "DEPLOY_BROKER_") || strings.HasPrefix(k, "AWS_") {
			bad("environment variable %q is not allowed (invalid name, or reserved DEPLOY_BROKER_/AWS_ prefix)", k)
		}
	}
	for k, arn := range j.Secrets {
		if !envNameRE.MatchString(k) {
			bad("secret variable name %q is not valid", k)
		}
		if _, err := ParseSecret(arn); err != nil {
			bad("secret %s: %v", k, err)
		}
	}
	for _, k := range j.Redact {
		if !envNameRE.MatchString(k) {
			bad("redact names %q, which is not a variable name", k)
		}
	}
	for i, s := range j.Policy {
		for _, e := range s.validate() {
			bad("policy[%d] %s", i, e)
		}
	}
	for _, arn := range j.ManagedPolicies {
		if !managedPolicyRE.MatchString(arn) {
			bad("managed policy %q must be an IAM policy ARN, e.g. \"arn:aws:iam::aws:policy/ReadOnlyAccess\" or \"arn:aws:iam::123456789012:policy/deploy-website\"", arn)
		}
	}
	return append(errs, j.validateGovernance()...)
}

func validFargateSize(cpu, mem int) bool {
	switch cpu {
	case 256:
		return mem == 512 || mem == 1024 || mem == 2048
	case 512:
		return mem >= 1024 && mem <= 4096 && mem%1024 == 0
	case 1024:
		return mem >= 2048 && mem <= 8192 && mem%1024 == 0
	case 2048:
		return mem >= 4096 && mem <= 16384 && mem%1024 == 0
	case 4096:
		return mem >= 8192 && mem <= 30720 && mem%1024 == 0
	case 8192:
		return mem >= 16384 && mem <= 61440 && mem%4096 == 0
	case 16384:
		return mem >= 32768 && mem <= 122880 && mem%8192 == 0
	}
	return false
}
