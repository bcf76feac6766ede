package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/yamlerr"
)

// The longest grace the stack can give: ECS on Fargate waits at most
// MaxStopTimeout between SIGTERM and SIGKILL, and the runner needs
// StopMargin after the grace to report the job's exit. Checked at load, so
// local mode refuses what synth would (infra uses the same figures).
const (
	MaxStopTimeout = 120 * time.Second
	StopMargin     = 10 * time.Second
	MaxGrace       = MaxStopTimeout - StopMargin
)

// Defaults applied by Load where the file is silent.
const (
	DefaultQueueRetention = Duration(time.Hour)
	DefaultMaxRequestAge  = Duration(15 * time.Minute)
	DefaultClockSkew      = Duration(2 * time.Minute)
	// DefaultMaxOpenRunsPerPrincipal and DefaultRejectedQueueRetention: see
	// Broker.MaxOpenRunsPerPrincipal and Broker.RejectedQueueRetention.
	DefaultMaxOpenRunsPerPrincipal = 10
	DefaultRejectedQueueRetention  = Duration(5 * time.Minute)
	// MaxOpenRunsLimit bounds max_open_runs_per_principal: the dispatcher
	// keeps a principal's open runs in one ledger item.
	MaxOpenRunsLimit       = 500
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
	c, err := parse(b, path)
	var located *locatedError
	if errors.As(err, &located) {
		return nil, fmt.Errorf("broker configuration %w", err) // "broker configuration FILE:LINE: …"
	}
	if err != nil {
		return nil, fmt.Errorf("broker configuration %s: %w", path, err)
	}
	return c, nil
}

// locatedError is a decoding error that already names the file and line.
type locatedError struct{ err error }

func (e *locatedError) Error() string { return e.err.Error() }
func (e *locatedError) Unwrap() error { return e.err }

// Parse decodes and validates a configuration document.
func Parse(b []byte) (*Config, error) { return parse(b, "") }

// parse is Parse for the file name (for messages; "" for none).
func parse(b []byte, name string) (*Config, error) {
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
		// FILE:LINE: unknown key "grase" in runner; valid keys: …; did you mean "grace"?
		err = yamlerr.Describe(name, b, err, Config{})
		if name != "" {
			return nil, &locatedError{err}
		}
		return nil, err
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
	def(&c.Broker.RejectedQueueRetention, min(DefaultRejectedQueueRetention, c.Broker.QueueRetention))
	if c.Broker.MaxOpenRunsPerPrincipal == 0 {
		c.Broker.MaxOpenRunsPerPrincipal = DefaultMaxOpenRunsPerPrincipal
	}
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

var kmsKeyRE = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$`)

var principalRE = regexp.MustCompile(`^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/-]+$|^\d{12}$`)

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
	if k := c.Broker.RunLogKey; k != "" && k != "create" && !kmsKeyRE.MatchString(k) {
		bad("broker.run_log_key %q must be \"create\" or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", k)
	}
	if n := c.Broker.MaxOpenRunsPerPrincipal; n < 1 || n > MaxOpenRunsLimit {
		bad("broker.max_open_runs_per_principal %d must be between 1 and %d", n, MaxOpenRunsLimit)
	}
	if r := c.Broker.RejectedQueueRetention.D(); r < 30*time.Second || r > c.Broker.QueueRetention.D() {
		bad("broker.rejected_queue_retention %s must be at least 30s (the trigger must have time to read the rejection) and at most broker.queue_retention (%s)", r, c.Broker.QueueRetention.D())
	}
	if len(c.TrustedPrincipals) == 0 {
		bad("trusted_principals is empty: list the IAM role ARNs of your CI systems that may trigger jobs")
	}
	for _, p := range c.TrustedPrincipals {
		if p == "*" || !principalRE.MatchString(p) {
			bad("trusted principal %q must be an IAM role/user ARN or an account id (never \"*\")", p)
		}
	}
	for _, p := range c.Operators {
		if err := identity.ValidatePattern(p); err != nil {
			bad("operators entry %q: %s (give a full role or user ARN with its account)", p, strings.TrimPrefix(err.Error(), "identity: "))
		}
	}
	c.validateViewers(bad) // viewers.go
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
	if g := c.Runner.Grace.D(); g > MaxGrace || g < 0 {
		bad("runner.grace %s is too long (or negative): Fargate kills a container at most %s after SIGTERM and the runner needs %s to report its exit, so grace may be at most %s", g, MaxStopTimeout, StopMargin, MaxGrace)
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
		for i, st := range j.Policy {
			for _, e := range st.guardedByBroker(c.Broker.Name) {
				bad("job %q: policy[%d] %s", name, i, e)
			}
		}
		c.Jobs[name] = j
	}
	errs = append(errs, c.validateGroups()...)
	if len(errs) > 0 {
		return fmt.Errorf("%d problem(s): %s", len(errs), strings.Join(errs, "; "))
	}
	return nil
}
