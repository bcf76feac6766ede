package localbroker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// Issue 25: approver.env, like the env file, sets no empty variable (it
// set AWS_PROFILE=, which breaks the AWS CLI for whoever sources it) and
// holds the approver's session, made in the emulator (moto's STS; that
// the broker trusts the session is proven by the governance end-to-end
// tests, not here).
func TestApproverEnvHasNoEmptyValues(t *testing.T) {
	server, _ := mototest.Start(t)
	cfg, err := config.Load("../../examples/governance/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{Server: server, Config: cfg, Resources: &Resources{Region: "us-east-1", TopicARN: "arn:aws:sns:us-east-1:123456789012:deploy-broker"}}
	path, arn, err := b.writeApproverEnv(context.Background(), filepath.Join(t.TempDir(), "broker.env"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(arn, "arn:aws:sts::111111111111:assumed-role/release-manager/") {
		t.Errorf("approver %q, want a session of release-manager", arn)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if k, v, _ := strings.Cut(line, "="); v == "" {
			t.Errorf("%s is set to an empty value", k)
		}
	}
	// --env local works for the approver too (it did not: approver.env
	// named no environments file).
	envs, err := filepath.Abs(filepath.Join(filepath.Dir(path), "environments.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nAWS_SESSION_TOKEN=", "\nAWS_ENDPOINT_URL=" + server.URL + "\n", "\nDEPLOY_TRIGGER_TOPIC_ARN=arn:aws:sns:us-east-1:123456789012:deploy-broker\n", "\nDEPLOY_TRIGGER_ENVIRONMENTS=" + envs + "\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("approver.env lacks %q:\n%s", want, s)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("approver.env mode: %v %v (it holds credentials: 0600)", fi.Mode(), err)
	}
}
