package trigger

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deploy-broker/deploy-broker/internal/yamlerr"
)

// EnvironmentsFile is the optional file that names deployment targets, so
// that "deploy-trigger --env production website version=1.4.2" is all a user
// types:
//
//	environments:
//	  production:
//	    topic_arn: arn:aws:sns:eu-west-1:123456789012:deploy-broker
//	    account_id: "123456789012"
//	    account_alias: acme-prod
//	    profile: prod-deployer
//	    confirm: true
type EnvironmentsFile struct {
	Environments map[string]Environment `yaml:"environments"`
}

// Environment is one named target.
type Environment struct {
	TopicARN     string `yaml:"topic_arn"`
	Region       string `yaml:"region"`
	AccountID    string `yaml:"account_id"`
	AccountAlias string `yaml:"account_alias"`
	Profile      string `yaml:"profile"`
	RoleARN      string `yaml:"role_arn"`
	ExternalID   string `yaml:"external_id"`
	Confirm      bool   `yaml:"confirm"`
}

// MaxEnvironmentsBytes bounds the environments file.
const MaxEnvironmentsBytes = 256 * 1024

// decodeEnvironments strictly decodes an environments file: size limit,
// unknown fields refused, one document, every environment valid.
func decodeEnvironments(b []byte, name string) (*EnvironmentsFile, error) {
	if len(b) > MaxEnvironmentsBytes {
		return nil, fmt.Errorf("environments file %s is %d bytes, over the %d-byte limit", name, len(b), MaxEnvironmentsBytes)
	}
	var f EnvironmentsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("environments file %s is empty; expected an environments: map", name)
		}
		// FILE:LINE: unknown key "acount_id" in environments.prod; valid keys: …; did you mean "account_id"?
		return nil, fmt.Errorf("environments file %w", yamlerr.Describe(name, b, err, EnvironmentsFile{}))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("environments file %s holds more than one YAML document", name)
	}
	if len(f.Environments) == 0 {
		return nil, fmt.Errorf("environments file %s defines no environments; expected an environments: map", name)
	}
	for _, n := range f.names() {
		if err := f.Environments[n].validate(); err != nil {
			return nil, fmt.Errorf("environments file %s, environment %q: %w", name, n, err)
		}
	}
	return &f, nil
}

func (f *EnvironmentsFile) names() []string {
	names := make([]string, 0, len(f.Environments))
	for n := range f.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (e Environment) validate() error {
	if e.TopicARN == "" {
		return errors.New("topic_arn is missing")
	}
	t, err := parseTopicARN(e.TopicARN)
	if err != nil {
		return err
	}
	if e.Region != "" && e.Region != t.Region {
		return fmt.Errorf("region %s does not match the topic ARN's region %s", e.Region, t.Region)
	}
	if e.AccountID != "" {
		if !validAccountID(e.AccountID) {
			return fmt.Errorf("account_id %q is not a 12-digit account id (quote it in YAML)", short(e.AccountID, 40))
		}
		if e.AccountID != t.Account {
			return fmt.Errorf("account_id %s does not match the topic ARN's account %s", e.AccountID, t.Account)
		}
	}
	if e.RoleARN != "" && !strings.HasPrefix(e.RoleARN, "arn:") {
		return fmt.Errorf("role_arn %q is not an IAM role ARN", short(e.RoleARN, 80))
	}
	if e.ExternalID != "" && e.RoleARN == "" {
		return errors.New("external_id needs role_arn")
	}
	return nil
}

// environmentsPaths is where the file is looked for, in order.
func environmentsPaths(explicit string, getenv func(string) string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	paths := []string{".deploy-trigger.yaml"}
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		paths = append(paths, filepath.Join(x, "deploy-trigger", "environments.yaml"))
	} else if h := getenv("HOME"); h != "" {
		paths = append(paths, filepath.Join(h, ".config", "deploy-trigger", "environments.yaml"))
	}
	return paths
}

// loadEnvironment finds the environments file and returns the named environment.
func loadEnvironment(name, explicit string, getenv func(string) string) (Environment, string, error) {
	paths := environmentsPaths(explicit, getenv)
	for _, p := range paths {
		fh, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) && explicit == "" {
			continue
		}
		if err != nil {
			return Environment{}, "", fmt.Errorf("reading environments file: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(fh, MaxEnvironmentsBytes+1))
		fh.Close()
		if err != nil {
			return Environment{}, "", fmt.Errorf("reading environments file %s: %w", p, err)
		}
		f, err := decodeEnvironments(b, p)
		if err != nil {
			return Environment{}, "", err
		}
		e, ok := f.Environments[name]
		if !ok {
			return Environment{}, "", fmt.Errorf("unknown environment %q: %s defines %s", name, p, strings.Join(f.names(), ", "))
		}
		return e, p, nil
	}
	return Environment{}, "", fmt.Errorf("environment %q was asked for, but no environments file was found (looked for %s); create one or pass --environments FILE", name, strings.Join(paths, ", "))
}
