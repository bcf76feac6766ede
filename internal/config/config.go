package config

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds the configuration file.
const MaxFileBytes = 1 << 20

// Config is the whole broker configuration file.
type Config struct {
	Broker            Broker   `yaml:"broker"`
	TrustedPrincipals []string `yaml:"trusted_principals"`
	// Operators may cancel and release any run (identity.MatchPrincipal
	// patterns). Without them only the principal that requested a run may.
	Operators  []string       `yaml:"operators,omitempty"`
	GitHubOIDC *GitHubOIDC    `yaml:"github_oidc,omitempty"`
	Network    Network        `yaml:"network"`
	Runner     Runner         `yaml:"runner"`
	Jobs       map[string]Job `yaml:"jobs"`

	// Viewers may read the run history and every run's log (viewers.go);
	// default: nobody.
	Viewers []string `yaml:"viewers,omitempty"`
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
	// MaxOpenRunsPerPrincipal bounds the runs one verified principal (an
	// assumed role, whatever the session, or an IAM user) may have open at
	// once; a request beyond it is rejected "throttled" without a task.
	MaxOpenRunsPerPrincipal int `yaml:"max_open_runs_per_principal"`
	// RejectedQueueRetention is how long the queue of a rejected run is kept
	// after the rejection was written: long enough for the trigger to read it.
	RejectedQueueRetention Duration `yaml:"rejected_queue_retention"`
	// LedgerRetention is how long ledger items live (DynamoDB TTL).
	LedgerRetention Duration `yaml:"ledger_retention"`
	// LogRetentionDays applies to every log group of the stack.
	LogRetentionDays int `yaml:"log_retention_days"`
	// RunLogKey encrypts the run log group (every run's unredacted output)
	// with a customer-managed KMS key: "create" for a key of the stack, or
	// an existing key's ARN. Empty: CloudWatch Logs' own encryption.
	RunLogKey string `yaml:"run_log_key,omitempty"`
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

// JobNames returns the catalogue's job names, sorted.
func (c *Config) JobNames() []string { return sortedKeys(c.Jobs) }

// TaskFamily is the ECS task definition family of a job.
func (c *Config) TaskFamily(job string) string { return c.Broker.Name + "-" + job }

// ContainerName is the name of the runner container in every task definition.
const ContainerName = "runner"

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
