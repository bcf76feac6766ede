package localbroker

import (
	"context"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// Local mode keeps working for any configuration: whatever form its trusted
// principals take, the env file's identity is one the configuration trusts
// (and, where jobs restrict who may run them, the one that may run most).
func TestLocalIdentityIsTrustedForAnyConfiguration(t *testing.T) {
	_, awsCfg := mototest.Start(t)
	base, err := config.Load("../../examples/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		trusted []string
		allowed []string // on job website
		want    string   // prefix of the identity's ARN
	}{
		{"the example's roles", nil, nil, "arn:aws:sts::111111111111:assumed-role/jenkins-deployer/deploy-broker-local"},
		{"the example as it is", nil, []string{"arn:aws:iam::111111111111:role/github-deployer", "arn:aws:iam::111111111111:role/jenkins-deployer"}, "arn:aws:sts::111111111111:assumed-role/jenkins-deployer/"},
		{"an account id", []string{"222222222222"}, nil, "arn:aws:sts::222222222222:assumed-role/deploy-broker-local/deploy-broker-local"},
		{"an account root", []string{"arn:aws:iam::333333333333:root"}, nil, "arn:aws:sts::333333333333:assumed-role/deploy-broker-local/"},
		{"a role with a path", []string{"arn:aws:iam::444444444444:role/ci/deployer"}, nil, "arn:aws:sts::444444444444:assumed-role/deployer/"},
		{"a session pattern", []string{"arn:aws:sts::555555555555:assumed-role/sso-admin/*@example.com"}, nil, "arn:aws:sts::555555555555:assumed-role/sso-admin/local@example.com"},
		{"a job allowing only the second role", nil, []string{"arn:aws:iam::111111111111:role/github-deployer"}, "arn:aws:sts::111111111111:assumed-role/github-deployer/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := *base
			cfg.Jobs = map[string]config.Job{}
			for k, v := range base.Jobs {
				cfg.Jobs[k] = v
			}
			if c.trusted != nil {
				cfg.TrustedPrincipals = c.trusted
			}
			j := cfg.Jobs["website"]
			j.AllowedPrincipals = c.allowed
			cfg.Jobs["website"] = j
			id, err := chooseIdentity(context.Background(), awsCfg, &cfg)
			if err != nil {
				t.Fatal(err)
			}
			if id == nil || !strings.HasPrefix(id.ARN, c.want) {
				t.Fatalf("identity %+v, want %s…", id, c.want)
			}
		})
	}
}
