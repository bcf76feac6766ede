package trigger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// writeProfiles writes AWS config files with a base profile and a profile
// that assumes a role with MFA, as a person's laptop has.
func writeProfiles(t *testing.T) (configFile, credsFile string) {
	dir := t.TempDir()
	configFile, credsFile = filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	os.WriteFile(configFile, []byte(`[profile base]
region = us-east-1
[profile deployer]
role_arn = arn:aws:iam::123456789012:role/ci-trigger
source_profile = base
mfa_serial = arn:aws:iam::123456789012:mfa/alice
`), 0o600)
	os.WriteFile(credsFile, []byte("[base]\naws_access_key_id = test\naws_secret_access_key = test\n"), 0o600)
	return configFile, credsFile
}

func runDry(t *testing.T, b *scriptedBroker, stdin string, tty bool, args ...string) (string, string, error) {
	t.Helper()
	cfgFile, credsFile := writeProfiles(t)
	getenv := b.env("AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_CONFIG_FILE="+cfgFile, "AWS_SHARED_CREDENTIALS_FILE="+credsFile, "USER=alice")
	var stdout, stderr bytes.Buffer
	a := newApp(getenv, strings.NewReader(stdin), &stdout, &stderr, nil)
	a.stdinTTY = tty
	err := a.main(context.Background(), args)
	return stdout.String(), stderr.String(), err
}

func TestDryRunPublishesNothing(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	stdout, stderr, err := runDry(t, b, "", false, "--dry-run", "--profile", "base", "website", "version=1.4.2")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	req, derr := protocol.DecodeRequest([]byte(stdout))
	if derr != nil {
		t.Fatalf("dry run did not print the request: %v\n%s", derr, stdout)
	}
	if req.Job != "website" || req.Params["version"] != "1.4.2" || req.Requester.Actor != "alice" {
		t.Errorf("request %+v", req)
	}
	if !strings.Contains(stderr, "would publish as arn:aws:") || !strings.Contains(stderr, "→ account 123456789012 in us-east-1") {
		t.Errorf("stderr lacks identity or target:\n%s", stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if r := b.tryRequest(ctx); r != nil {
		t.Errorf("dry run published %+v", r)
	}
}

func TestMFAProfileOnTerminal(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	_, stderr, err := runDry(t, b, "123456\n", true, "--dry-run", "--profile", "deployer", "website")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "MFA code for profile deployer: ") || !strings.Contains(stderr, "assumed-role/ci-trigger/") {
		t.Errorf("no MFA prompt or not the assumed role:\n%s", stderr)
	}
}

func TestMFAProfileWithoutTerminal(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	_, stderr, err := runDry(t, b, "", false, "--dry-run", "--profile", "deployer", "website")
	if codeOf(err) != exitcode.Usage || !strings.Contains(err.Error(), `profile "deployer" needs an MFA code (mfa_serial), but stdin is not a terminal`) {
		t.Fatalf("code %d: %v", codeOf(err), err)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Errorf("error is not short:\n%s", stderr)
	}
}

func TestRoleARNSessionNamesTheRun(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	_, stderr, err := runDry(t, b, "", false, "--dry-run", "--profile", "base", "--role-arn", "arn:aws:iam::123456789012:role/ci-trigger", "--external-id", "acme", "website")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "assumed-role/ci-trigger/deploy-trigger-alice") {
		t.Errorf("session not named after the run:\n%s", stderr)
	}
}

func TestUnknownProfile(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	_, _, err := runDry(t, b, "", false, "--dry-run", "--profile", "nope", "website")
	if codeOf(err) != exitcode.Usage || !strings.Contains(err.Error(), `AWS profile "nope" does not exist`) {
		t.Fatalf("code %d: %v", codeOf(err), err)
	}
}

// Access denied on publish names the principal (asked of STS on moto).
func TestAccessDeniedNamesThePrincipal(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	cfgFile, credsFile := writeProfiles(t)
	getenv := b.env("AWS_CONFIG_FILE="+cfgFile, "AWS_SHARED_CREDENTIALS_FILE="+credsFile)
	c, err := resolve(&CLI{Job: "website", TopicARN: b.topicARN, StartTimeout: 1, CancelGrace: 1, RequestTTL: 300e9, MissedHeartbeats: 4}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	awsCfg, err := loadAWS(context.Background(), c, getenv, &protocol.Requester{CI: "local"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	denied := &smithy.GenericAPIError{Code: "AuthorizationError", Message: "User: arn:aws:iam::123456789012:user/x is not authorized to perform: SNS:Publish"}
	got := describeAWSError(context.Background(), newClients(awsCfg), denied, "publishing the run request to "+b.topicARN, "sns:Publish on the topic")
	if codeOf(got) != exitcode.Broker || !strings.Contains(got.Error(), "access denied for arn:aws:") || !strings.Contains(got.Error(), "which needs sns:Publish on the topic") {
		t.Fatalf("%v", got)
	}
	expired := describeAWSError(context.Background(), newClients(awsCfg), &smithy.GenericAPIError{Code: "ExpiredToken"}, "publishing", "")
	if !strings.Contains(expired.Error(), "your AWS credentials have expired; refresh them") {
		t.Errorf("%v", expired)
	}
	if errors.Unwrap(expired) == nil {
		t.Errorf("not wrapped")
	}
}
