package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// MaxFileBytes bounds the configuration file.
const MaxFileBytes = 1 << 20

// Config is the whole broker configuration file.
type Config struct {
	Broker            Broker         `yaml:"broker"`
	TrustedPrincipals []string       `yaml:"trusted_principals"`
	GitHubOIDC        *GitHubOIDC    `yaml:"github_oidc,omitempty"`
	Network           Network        `yaml:"network"`
	Runner            Runner         `yaml:"runner"`
	Jobs              map[string]Job `yaml:"jobs"`
}

// Broker holds stack-wide settings.
type Broker struct {
	// Name prefixes every resource: the topic, the cluster, task definition
	// families (<name>-<job>), run queues (<name>-<run id>.fifo).
	Name string `yaml:"name"`
	// AccountAlias is reported in accepted records so users see where they deploy.
	AccountAlias string `yaml:"account_alias"`
	// QueueRetention is how long a run queue is kept after its run ended.
	QueueRetention Duration `yaml:"queue_retention"`
	// MaxRequestAge bounds how far in the future a request may expire, and the
	// clock skew tolerated between CI and the broker.
	MaxRequestAge Duration `yaml:"max_request_age"`
	ClockSkew     Duration `yaml:"clock_skew"`
	// LedgerRetention is how long ledger items live (DynamoDB TTL).
	LedgerRetention Duration `yaml:"ledger_retention"`
	// LogRetentionDays applies to every log group of the stack.
	LogRetentionDays int `yaml:"log_retention_days"`
}

// GitHubOIDC optionally creates a trigger role for GitHub Actions.
type GitHubOIDC struct {
	// ProviderARN of an existing token.actions.githubusercontent.com provider;
	// empty creates one.
	ProviderARN string `yaml:"provider_arn,omitempty"`
	// Subjects are exact `sub` claims allowed, e.g.
	// "repo:org/app:ref:refs/heads/main" or "repo:org/app:environment:production".
	Subjects []string `yaml:"subjects"`
}

// Network says where run tasks are placed.
type Network struct {
	// VPCID, Subnets and SecurityGroups name existing resources. When Subnets
	// is empty the stack creates a VPC with flow logs and a security group
	// with no inbound rules.
	VPCID          string   `yaml:"vpc_id,omitempty"`
	Subnets        []string `yaml:"subnets,omitempty"`
	SecurityGroups []string `yaml:"security_groups,omitempty"`
	AssignPublicIP bool     `yaml:"assign_public_ip,omitempty"`
}

// Runner holds settings of the runner container common to all jobs.
type Runner struct {
	// Image is the default image for jobs that name none: it must have the
	// runner binary as its entrypoint.
	Image     string   `yaml:"image"`
	Heartbeat Duration `yaml:"heartbeat"`
	Grace     Duration `yaml:"grace"`
}

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
}

// Statement is one IAM policy statement of a job's task role.
type Statement struct {
	Sid       string                    `yaml:"sid,omitempty"`
	Effect    string                    `yaml:"effect,omitempty"` // Allow (default) or Deny
	Actions   []string                  `yaml:"actions"`
	Resources []string                  `yaml:"resources"`
	Condition map[string]map[string]any `yaml:"condition,omitempty"`
	// WildcardResourceReason says why an Allow statement grants resource "*"
	// without a condition (e.g. "ec2:DescribeInstances has no resource-level
	// permissions"). Without a condition or a reason, "*" is refused.
	WildcardResourceReason string `yaml:"wildcard_resource_reason,omitempty"`
}

// ParamType is a parameter's type.
type ParamType string

// Parameter types.
const (
	TypeString ParamType = "string"
	TypeInt    ParamType = "int"
	TypeBool   ParamType = "bool"
	TypeEnum   ParamType = "enum"
)

// Param declares one job parameter.
type Param struct {
	Type        ParamType `yaml:"type"`
	Description string    `yaml:"description,omitempty"`
	Required    bool      `yaml:"required,omitempty"`
	Default     *string   `yaml:"default,omitempty"`
	// Pattern is a regular expression the whole value must match (string).
	Pattern   string   `yaml:"pattern,omitempty"`
	MinLength int      `yaml:"min_length,omitempty"`
	MaxLength int      `yaml:"max_length,omitempty"`
	Values    []string `yaml:"values,omitempty"` // enum
	Min       *int64   `yaml:"min,omitempty"`    // int
	Max       *int64   `yaml:"max,omitempty"`    // int
	// Secret values are redacted in audit logs and the run ledger.
	Secret bool `yaml:"secret,omitempty"`
	// AllowLeadingDash lets a value that starts with '-' (a negative number,
	// or an option the job author means to let the request choose) begin an
	// argv element. By default such a value is refused there, since the
	// program would read it as an option ("--help", "-rf"). Inside an element
	// after other text ("--count={{n}}") a leading '-' is always allowed.
	AllowLeadingDash bool `yaml:"allow_leading_dash,omitempty"`

	re *regexp.Regexp
}

// Duration is a time.Duration written as "30m", "1h30m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration must be a string like \"30m\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration; write it like \"90s\", \"30m\" or \"1h\"", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults applied by Load where the file is silent.
const (
	DefaultQueueRetention  = Duration(time.Hour)
	DefaultMaxRequestAge   = Duration(15 * time.Minute)
	DefaultClockSkew       = Duration(2 * time.Minute)
	DefaultLedgerRetention = Duration(90 * 24 * time.Hour)
	DefaultLogRetention    = 90
	DefaultHeartbeat       = Duration(10 * time.Second)
	DefaultGrace           = Duration(30 * time.Second)
	DefaultTimeout         = Duration(30 * time.Minute)
	DefaultCPU             = 256
	DefaultMemory          = 512
)

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading broker configuration: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading broker configuration %s: %w", path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("broker configuration %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration document.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("file is %d bytes, over the %d-byte limit", len(b), MaxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file is empty")
		}
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("file holds more than one YAML document")
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	def := func(d *Duration, v Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Broker.QueueRetention, DefaultQueueRetention)
	def(&c.Broker.MaxRequestAge, DefaultMaxRequestAge)
	def(&c.Broker.ClockSkew, DefaultClockSkew)
	def(&c.Broker.LedgerRetention, DefaultLedgerRetention)
	if c.Broker.LogRetentionDays == 0 {
		c.Broker.LogRetentionDays = DefaultLogRetention
	}
	def(&c.Runner.Heartbeat, DefaultHeartbeat)
	def(&c.Runner.Grace, DefaultGrace)
	for name, j := range c.Jobs {
		def(&j.Timeout, DefaultTimeout)
		if j.CPU == 0 {
			j.CPU = DefaultCPU
		}
		if j.Memory == 0 {
			j.Memory = DefaultMemory
		}
		if j.Image == "" {
			j.Image = c.Runner.Image
		}
		for i := range j.Policy {
			if j.Policy[i].Effect == "" {
				j.Policy[i].Effect = "Allow"
			}
		}
		c.Jobs[name] = j
	}
}

var brokerNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var placeholderRE = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)
var principalRE = regexp.MustCompile(`^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/-]+$|^\d{12}$`)
var managedPolicyRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/[A-Za-z0-9+=,.@_/-]+$`)

// An Allow statement's action: a service prefix and an action name, which
// may end with one '*' after at least one character ("s3:Get*"). A Deny may
// use wildcards anywhere after the prefix: it takes away, never grants.
var allowActionRE = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9]+\*?$`)
var denyActionRE = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9*?]+$`)
var conditionOperatorRE = regexp.MustCompile(`^(ForAllValues:|ForAnyValue:)?[A-Za-z]+$`)

// Validate checks the whole configuration and reports every problem it finds.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }

	switch {
	case c.Broker.Name == "":
		bad("broker.name is missing: name the broker, e.g. \"deploy-broker\"")
	case !brokerNameRE.MatchString(c.Broker.Name):
		bad("broker.name %q must be lower-case letters, digits and '-', starting with a letter", c.Broker.Name)
	case len(c.Broker.Name) > 20:
		bad("broker.name %q is longer than 20 characters (it prefixes queue and role names)", c.Broker.Name)
	}
	if len(c.TrustedPrincipals) == 0 {
		bad("trusted_principals is empty: list the IAM role ARNs of your CI systems that may trigger jobs")
	}
	for _, p := range c.TrustedPrincipals {
		if p == "*" || !principalRE.MatchString(p) {
			bad("trusted principal %q must be an IAM role/user ARN or an account id (never \"*\")", p)
		}
	}
	if g := c.GitHubOIDC; g != nil {
		if len(g.Subjects) == 0 {
			bad("github_oidc.subjects is empty: list the exact sub claims, e.g. \"repo:org/app:ref:refs/heads/main\"")
		}
		for _, s := range g.Subjects {
			if !strings.HasPrefix(s, "repo:") || strings.ContainsAny(s, "*?") {
				bad("github_oidc subject %q must be exact and start with \"repo:\" (no wildcards)", s)
			}
		}
	}
	if len(c.Network.Subnets) > 0 && len(c.Network.SecurityGroups) == 0 {
		bad("network.subnets is set but network.security_groups is empty: name the security group run tasks use")
	}
	if len(c.Network.Subnets) == 0 && (len(c.Network.SecurityGroups) > 0 || c.Network.VPCID != "") {
		bad("network names a VPC or security groups but no subnets: give network.subnets too, or leave network empty to create a VPC")
	}
	if c.Runner.Heartbeat.D() < time.Second {
		bad("runner.heartbeat %s is shorter than 1s", c.Runner.Heartbeat.D())
	}
	if len(c.Jobs) == 0 {
		bad("jobs is empty: declare at least one job")
	}
	for _, name := range c.JobNames() {
		j := c.Jobs[name]
		for _, e := range j.validate(name) {
			bad("job %q: %s", name, e)
		}
		c.Jobs[name] = j
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d problem(s): %s", len(errs), strings.Join(errs, "; "))
	}
	return nil
}

func (j *Job) validate(name string) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if !protocol.ValidJobName(name) {
		bad("the name must be lower-case letters, digits and '-', at most %d characters", protocol.MaxJobNameLength)
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
		if !strings.HasPrefix(arn, "arn:") {
			bad("secret %q must be a Secrets Manager or SSM parameter ARN", k)
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
	return errs
}

// validate checks one statement of a job's policy. An Allow statement may
// not grant a whole service, use a wildcard inside an action name, or grant
// resource "*" without a condition or a stated reason.
func (s *Statement) validate() []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if s.Effect != "Allow" && s.Effect != "Deny" {
		bad("effect must be Allow or Deny")
	}
	if len(s.Actions) == 0 || len(s.Resources) == 0 {
		bad("needs actions and resources")
	}
	for _, a := range s.Actions {
		switch {
		case a == "*" || strings.HasSuffix(a, ":*") && s.Effect == "Allow":
			bad("action %q grants a whole service; list the actions the job needs", a)
		case s.Effect == "Deny" && denyActionRE.MatchString(a), s.Effect != "Deny" && allowActionRE.MatchString(a):
		case s.Effect != "Deny" && strings.ContainsAny(a, "*?") && denyActionRE.MatchString(a):
			bad("action %q has a wildcard inside it; list the actions, or use one '*' at the end of an action prefix, as in \"s3:Get*\"", a)
		default:
			bad("action %q is not \"service:Action\", e.g. \"s3:PutObject\"", a)
		}
	}
	wild := false
	for _, r := range s.Resources {
		switch {
		case r == "*":
			wild = true
		case !strings.HasPrefix(r, "arn:"):
			bad("resource %q must be an ARN (or \"*\")", r)
		case anyResourceARN(r):
			wild = true // "arn:*", "arn:aws:*:*:*:*", "arn:aws:s3:::*": as broad as "*"
		}
	}
	if wild && s.Effect != "Deny" && len(s.Condition) == 0 && strings.TrimSpace(s.WildcardResourceReason) == "" {
		bad("grants resource \"*\": name the resources' ARNs; if an action has no resource-level permissions, add a condition or say why in wildcard_resource_reason")
	}
	if s.WildcardResourceReason != "" && !wild {
		bad("has a wildcard_resource_reason but no resource \"*\"")
	}
	for _, op := range sortedKeys(s.Condition) {
		if !conditionOperatorRE.MatchString(op) {
			bad("condition operator %q is not an IAM condition operator such as StringEquals or ForAnyValue:StringLike", op)
			continue
		}
		keys := s.Condition[op]
		if len(keys) == 0 {
			bad("condition %s names no condition key", op)
		}
		for _, k := range sortedKeys(keys) {
			if strings.TrimSpace(k) == "" {
				bad("condition %s has an empty condition key", op)
			} else if !conditionValue(keys[k]) {
				bad("condition %s %q must have a string, number or boolean value, or a non-empty list of them", op, k)
			}
		}
	}
	return errs
}

func conditionValue(v any) bool {
	switch v := v.(type) {
	case string, bool, int, int64, uint64, float64:
		return true
	case []any:
		if len(v) == 0 {
			return false
		}
		for _, x := range v {
			switch x.(type) {
			case string, bool, int, int64, uint64, float64:
			default:
				return false
			}
		}
		return true
	}
	return false
}

func (p *Param) compile() []string {
	var errs []string
	switch p.Type {
	case TypeString:
		if p.Pattern == "" && len(p.Values) == 0 {
			errs = append(errs, "a string parameter needs a pattern, so that only expected values reach the job")
		}
		if p.Pattern != "" {
			re, err := regexp.Compile(`^(?:` + p.Pattern + `)$`)
			if err != nil {
				errs = append(errs, fmt.Sprintf("pattern does not compile: %v", err))
			}
			p.re = re
		}
		if p.MaxLength == 0 {
			p.MaxLength = 256
		}
		if p.MaxLength > protocol.MaxParamValueBytes || p.MinLength > p.MaxLength || p.MinLength < 0 {
			errs = append(errs, fmt.Sprintf("min_length/max_length must satisfy 0 ≤ min ≤ max ≤ %d", protocol.MaxParamValueBytes))
		}
	case TypeEnum:
		if len(p.Values) == 0 {
			errs = append(errs, "an enum parameter needs values")
		}
	case TypeInt, TypeBool:
	case "":
		errs = append(errs, "type is missing: use string, int, bool or enum")
	default:
		errs = append(errs, fmt.Sprintf("type %q is unknown: use string, int, bool or enum", p.Type))
	}
	if p.Default != nil {
		if err := p.Check(*p.Default); err != nil {
			errs = append(errs, fmt.Sprintf("default %q is invalid: %v", *p.Default, err))
		}
	}
	if p.Required && p.Default != nil {
		errs = append(errs, "a required parameter cannot have a default")
	}
	if !p.Required && p.Default == nil && p.Type != "" {
		// Otherwise an omitted parameter would reach the command as "", a
		// value never checked against the type, pattern or min_length.
		errs = append(errs, "an optional parameter needs a default: set required: true, or give the default the job runs with (default: \"\" only if the declaration accepts an empty value)")
	}
	return errs
}

// anyResourceARN reports whether an ARN pattern matches every resource of
// its service, or of every service, or in every account: "arn:*",
// "arn:aws:*:…", "arn:aws:s3:::*", "arn:aws:iam::*:role/*". Such a
// resource is as broad as "*" and needs the same justification.
func anyResourceARN(arn string) bool {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return strings.Contains(arn, "*")
	}
	service, account, resource := parts[2], parts[4], parts[5]
	switch {
	case strings.ContainsAny(service, "*?"):
		return true
	case strings.Trim(resource, "*/:") == "":
		return true
	case strings.ContainsAny(account, "*?") && strings.HasSuffix(resource, "*"):
		return true
	}
	return false
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

// JobNames returns the catalogue's job names, sorted.
func (c *Config) JobNames() []string { return sortedKeys(c.Jobs) }

// TaskFamily is the ECS task definition family of a job.
func (c *Config) TaskFamily(job string) string { return c.Broker.Name + "-" + job }

// ContainerName is the name of the runner container in every task definition.
const ContainerName = "runner"

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
