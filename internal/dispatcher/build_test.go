package dispatcher_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestBuildFailsOnABadCatalogueWithEveryProblem(t *testing.T) {
	_, err := dispatcher.Build(context.Background(), aws.Config{Region: "us-east-1"},
		dispatcher.Settings{ConfigPath: filepath.Join("testdata", "bad-broker.yaml"), AccountID: "123456789012"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("Build accepted a bad catalogue")
	}
	msg := err.Error()
	for _, want := range []string{
		"broker configuration testdata/bad-broker.yaml: ",
		`broker.name "Bad_Name" must be lower-case letters`,
		`trusted principal "*" must be an IAM role/user ARN or an account id (never "*")`,
		`job "deploy": command[0] may not contain a parameter`,
		`job "deploy": parameter "tool": a string parameter needs a pattern`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q\nlacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}

	_, err = dispatcher.Build(context.Background(), aws.Config{}, dispatcher.Settings{ConfigPath: "testdata/missing.yaml", AccountID: "1"}, slog.Default())
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading broker configuration: ") {
		t.Errorf("missing file: %v", err)
	}
}

func TestBuildLoadsTheCatalogueOnce(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "broker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = template.Must(template.New("").Parse(string(raw))).Execute(&b, map[string]string{"Name": "prod"})
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := dispatcher.Build(context.Background(), aws.Config{Region: "eu-west-1"},
		dispatcher.Settings{ConfigPath: path, Cluster: "prod", LedgerTable: "prod-runs", AccountID: "123456789012"}, slog.Default())
	if err != nil || d == nil {
		t.Fatalf("Build: %v", err)
	}
	// The file is not read again per request.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if code, err := d.Decide(validRequest(t), now()); err != nil || code != "" {
		t.Errorf("decision after the file is gone: %q %v", code, err)
	}
}

func TestSettingsFromEnv(t *testing.T) {
	env := map[string]string{
		protocol.EnvConfig:          "/var/task/broker.yaml",
		protocol.EnvCluster:         "arn:aws:ecs:eu-west-1:123456789012:cluster/prod",
		protocol.EnvLedgerTable:     "prod-runs",
		protocol.EnvSubnets:         " subnet-a, subnet-b ,,",
		protocol.EnvSecurityGroups:  "sg-1",
		protocol.EnvAssignPublicIP:  "true",
		protocol.EnvExtraPrincipals: "arn:aws:iam::111111111111:role/reader",
		protocol.EnvAccountID:       "123456789012",
		protocol.EnvTaskRevisions:   "website=12,migrate=3",
		"AWS_REGION":                "eu-west-1",
	}
	s, err := dispatcher.SettingsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := dispatcher.Settings{ConfigPath: "/var/task/broker.yaml", Cluster: env[protocol.EnvCluster], LedgerTable: "prod-runs",
		Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-1"}, AssignPublicIP: true,
		ExtraPrincipals: []string{"arn:aws:iam::111111111111:role/reader"}, AccountID: "123456789012", Region: "eu-west-1"}
	if s.ConfigPath != want.ConfigPath || s.Cluster != want.Cluster || s.LedgerTable != want.LedgerTable ||
		strings.Join(s.Subnets, ",") != "subnet-a,subnet-b" || strings.Join(s.SecurityGroups, ",") != "sg-1" || !s.AssignPublicIP ||
		strings.Join(s.ExtraPrincipals, ",") != want.ExtraPrincipals[0] || s.AccountID != want.AccountID || s.Region != want.Region {
		t.Errorf("settings = %+v\nwant %+v", s, want)
	}
	if len(s.TaskDefinitions) != 2 || s.TaskDefinitions["website"] != "12" || s.TaskDefinitions["migrate"] != "3" {
		t.Errorf("task revisions = %v, want website 12 and migrate 3", s.TaskDefinitions)
	}
	for _, bad := range []string{"website", "website=", "website=latest", "=3", "website=3:1"} {
		env[protocol.EnvTaskRevisions] = bad
		if _, err := dispatcher.SettingsFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), protocol.EnvTaskRevisions) {
			t.Errorf("%s=%q: error %v, want one naming the variable", protocol.EnvTaskRevisions, bad, err)
		}
	}
	env[protocol.EnvTaskRevisions] = "website=12"

	env[protocol.EnvAssignPublicIP] = "yes"
	if s, _ := dispatcher.SettingsFromEnv(func(k string) string { return env[k] }); s.AssignPublicIP {
		t.Error(`only "true" assigns a public IP`)
	}

	_, err = dispatcher.SettingsFromEnv(func(k string) string { return "" })
	if err == nil || err.Error() != "dispatcher environment is incomplete: DEPLOY_BROKER_CONFIG, DEPLOY_BROKER_CLUSTER, DEPLOY_BROKER_LEDGER_TABLE not set (the CDK stack sets them)" {
		t.Errorf("empty environment: %v", err)
	}
	delete(env, protocol.EnvSecurityGroups)
	if _, err := dispatcher.SettingsFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Error("subnets without security groups were accepted")
	}
}
