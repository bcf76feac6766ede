package trigger

import (
	"errors"
	"fmt"
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
}

// resolve merges the environments file into the CLI and validates the lot.
func resolve(cli *CLI, getenv func(string) string) (*Config, error) {
	if err := cli.validate(); err != nil {
		return nil, err
	}
	c := &Config{CLI: *cli}
	params, err := parseParams(cli.Params)
	if err != nil {
		return nil, err
	}
	c.JobParams = params
	if cli.Env != "" {
		e, err := loadEnvironment(cli.Env, cli.Environments, getenv)
		if err != nil {
			return nil, err
		}
		if c.TopicARN == "" {
			c.TopicARN = e.TopicARN
		}
		if c.Account == "" {
			c.Account = e.AccountID
		}
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
