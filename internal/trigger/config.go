package trigger

import (
	"errors"
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/yamlerr"
)

// Config is one invocation's settings: the command line, environment
// variables and the chosen environment merged. Flags and DEPLOY_TRIGGER_*
// variables win over the environments file.
type Config struct {
	CLI
	Topic        Topic
	JobParams    map[string]string
	AccountAlias string
	Confirm      bool
	Source       string          // where the target came from, e.g. "environment production from .deploy-trigger.yaml"
	SecretParams map[string]bool // parameters whose values are never shown (secrets.go)
	Catalogue    *config.Config  // --catalogue, if given
}

// resolve merges the environments file into the CLI and validates the lot.
func resolve(cli *CLI, getenv func(string) string) (*Config, error) {
	if err := cli.validate(); err != nil {
		return nil, err
	}
	c := &Config{CLI: *cli}
	// The run request must never outlive the trigger's wait for it: once
	// the start timeout passes, the trigger cancels and releases, and a
	// request the broker picks up later must be refused as expired. (The
	// broker's clock-skew allowance is covered by the release, which stops
	// or closes a run that has not ended.)
	if c.RequestTTL > c.StartTimeout {
		c.RequestTTL = c.StartTimeout
	}
	params, fromEnv, err := parseParamArgs(cli.Params, getenv)
	if err != nil {
		return nil, err
	}
	c.JobParams = params
	c.SecretParams = map[string]bool{}
	for k := range params {
		if fromEnv[k] || looksSecret(k) {
			c.SecretParams[k] = true
		}
	}
	for _, n := range cli.Secret {
		c.SecretParams[strings.TrimSpace(n)] = true
	}
	if cli.Catalogue != "" {
		if c.Catalogue, err = config.Load(cli.Catalogue); err != nil {
			return nil, fmt.Errorf("--catalogue: %w", err)
		}
		if job, ok := c.Catalogue.Jobs[cli.Job]; ok {
			for k := range job.SecretParams() {
				c.SecretParams[k] = true
			}
		}
		if err := checkAgainstCatalogue(c); err != nil {
			return nil, errors.New(redactString(err.Error(), secretValues(params, c.SecretParams)))
		}
	}
	if cli.Env != "" {
		e, path, err := loadEnvironment(cli.Env, cli.Environments, getenv)
		if err != nil {
			return nil, err
		}
		// A named environment decides the target: a topic or account from a
		// flag or an ambient variable that contradicts it is a mistake (an
		// exported DEPLOY_TRIGGER_TOPIC_ARN from another shell), not an
		// override.
		if c.TopicARN != "" && c.TopicARN != e.TopicARN {
			from := origin(getenv, "DEPLOY_TRIGGER_TOPIC_ARN", "--topic-arn", c.TopicARN)
			return nil, fmt.Errorf("--env %s targets topic %s (%s), but %s gives topic %s: the environment decides the target; drop %s%s, nothing was published", cli.Env, e.TopicARN, path, from, c.TopicARN, from, unsetHint(from))
		}
		if c.Account != "" && e.AccountID != "" && c.Account != e.AccountID {
			from := origin(getenv, "DEPLOY_TRIGGER_EXPECT_ACCOUNT", "--expect-account", c.Account)
			return nil, fmt.Errorf("--env %s expects account %s (%s), but %s expects %s: the environment decides the target; drop %s%s, nothing was published", cli.Env, e.AccountID, path, from, c.Account, from, unsetHint(from))
		}
		c.TopicARN = e.TopicARN
		if c.Account == "" {
			c.Account = e.AccountID
		}
		c.Source = "environment " + cli.Env + " from " + path
		if c.Profile == "" {
			c.Profile = e.Profile
		}
		if c.RoleARN == "" {
			c.RoleARN, c.ExternalID = e.RoleARN, firstNonEmpty(c.ExternalID, e.ExternalID)
		}
		c.AccountAlias = e.AccountAlias
		c.Confirm = e.Confirm
	}
	if c.TopicARN == "" {
		return nil, errors.New("no broker topic: pass --env NAME (with an environments file), --topic-arn ARN, or set DEPLOY_TRIGGER_TOPIC_ARN")
	}
	if c.Source == "" {
		c.Source = "topic from " + origin(getenv, "DEPLOY_TRIGGER_TOPIC_ARN", "--topic-arn", c.TopicARN)
	}
	if c.Topic, err = parseTopicARN(c.TopicARN); err != nil {
		return nil, err
	}
	if c.Account != "" && c.Account != c.Topic.Account {
		return nil, fmt.Errorf("the topic %s is in account %s, but account %s is expected: check --topic-arn, --expect-account and the environment", c.TopicARN, c.Topic.Account, c.Account)
	}
	if c.Account == "" {
		c.Account = c.Topic.Account
	}
	return c, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// origin names where a value came from: the environment variable when it
// holds that value, else the flag.
func origin(getenv func(string) string, envVar, flag, value string) string {
	if getenv(envVar) == value {
		return envVar
	}
	return flag
}

func unsetHint(from string) string {
	if strings.HasPrefix(from, "DEPLOY_TRIGGER_") {
		return " (unset " + from + ")"
	}
	return ""
}

// checkAgainstCatalogue checks the job and its parameters as the
// dispatcher will (config.Job.Resolve), against the --catalogue file.
func checkAgainstCatalogue(c *Config) error {
	if isCommand(c.Job) {
		return nil
	}
	job, ok := c.Catalogue.Jobs[c.Job]
	if !ok {
		return fmt.Errorf("job %q is not in the catalogue %s (jobs: %s)%s", c.Job, c.CLI.Catalogue, strings.Join(c.Catalogue.JobNames(), ", "), yamlerr.DidYouMean(c.Job, c.Catalogue.JobNames()))
	}
	if _, err := job.Resolve(c.JobParams); err != nil {
		return fmt.Errorf("job %q, as the catalogue %s declares it: %w", c.Job, c.CLI.Catalogue, err)
	}
	return nil
}

// dryRunChecks says exactly what a dry run checked, and what it did not.
func dryRunChecks(c *Config) string {
	s := "checked: flags, parameter syntax and sizes, the target (topic, region, account), and the credentials (sts:GetCallerIdentity)"
	if c.Catalogue != nil {
		return s + ", and job " + c.Job + " and its parameters against the catalogue " + c.CLI.Catalogue + " as the broker checks them (if the broker runs that catalogue)"
	}
	return s // checkDeployed (discovery.go) adds the check against the broker's published catalogue
}
