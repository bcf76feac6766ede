package trigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

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

// A run, not only a dry run, whose profile needs an MFA code without a
// terminal is a usage error (240), as documented; it used to fail later,
// signing the proof, as a broker error (247). Nothing is published.
func TestMFAProfileWithoutTerminalRun(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	_, _, err := runDry(t, b, "", false, "--profile", "deployer", "website")
	if codeOf(err) != exitcode.Usage || !strings.Contains(err.Error(), `profile "deployer" needs an MFA code (mfa_serial), but stdin is not a terminal`) {
		t.Fatalf("code %d: %v", codeOf(err), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if r := b.tryRequest(ctx); r != nil {
		t.Errorf("published %+v", r)
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

// Issue 14.8: the built binary, with AWS_ENDPOINT_URL in its process
// environment (where the SDK's own profile STS client ignores it), assumes
// an MFA profile's role through that endpoint, and a second run uses the
// cached session without asking for a code again. HTTPS_PROXY points at a
// closed port, so a call to a real AWS host would fail, not leave the machine.
func TestMFAProfileBinaryUsesEndpointAndCachesTheSession(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	b := startScripted(t, "deploy-broker")
	cache := t.TempDir()
	dry := func(wantPrompt bool) string {
		cmd := mfaTriggerCmd(t, bin, b, cache, "--dry-run", "--profile", "deployer", "website")
		ptmx, screen := onTerminal(t, cmd)
		if wantPrompt {
			waitFor(t, func() bool { return strings.Contains(screen.String(), "MFA code for profile deployer: ") })
			ptmx.Write([]byte("123456\n"))
		}
		if err := waitExit(t, cmd, 30*time.Second, "its dry run", screen); err != nil {
			t.Fatalf("dry run: %v\n%s", err, screen.String())
		}
		waitFor(t, func() bool { return strings.Contains(screen.String(), "dry run: nothing was published") })
		return screen.String()
	}
	first := dry(true)
	if !strings.Contains(first, "assumed-role/ci-trigger/") {
		t.Fatalf("not the assumed role:\n%s", first)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "deploy-trigger", "mfa", "*.json"))
	if len(files) != 1 {
		t.Fatalf("cached sessions: %v", files)
	}
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode: %v %v", st.Mode(), err)
	}
	second := dry(false)
	if strings.Contains(second, "MFA code") || !strings.Contains(second, "assumed-role/ci-trigger/") {
		t.Errorf("second run asked again or lost the role:\n%s", second)
	}
}

// mfaTriggerCmd is the deploy-trigger binary with args, the AWS config
// files of writeProfiles, and the MFA session cache in cache. AWS calls go
// to the scripted broker's endpoint; HTTPS_PROXY points at a closed port,
// so a call to a real AWS host would fail, not leave the machine.
func mfaTriggerCmd(t *testing.T, bin string, b *scriptedBroker, cache string, args ...string) *exec.Cmd {
	cfgFile, credsFile := writeProfiles(t)
	cmd := exec.Command(filepath.Join(bin, "deploy-trigger"), args...)
	cmd.Env = append(b.srv.Env("us-east-1"), "DEPLOY_TRIGGER_TOPIC_ARN="+b.topicARN, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=",
		"AWS_CONFIG_FILE="+cfgFile, "AWS_SHARED_CREDENTIALS_FILE="+credsFile, "XDG_CACHE_HOME="+cache,
		"HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1", "PATH="+os.Getenv("PATH"))
	return cmd
}

// Ctrl-C at the MFA code prompt stops at once (248), without waiting for
// Enter, as at the confirmation prompt, and nothing is published.
func TestMFAPromptCtrlCAborts(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	b := startScripted(t, "deploy-broker")
	cmd := mfaTriggerCmd(t, bin, b, t.TempDir(), "--profile", "deployer", "website")
	ptmx, screen := onTerminal(t, cmd)
	waitFor(t, func() bool { return strings.Contains(screen.String(), "MFA code for profile deployer: ") })
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C: the terminal sends SIGINT
		t.Fatal(err)
	}
	err := waitExit(t, cmd, 20*time.Second, "on Ctrl-C at the MFA prompt", screen)
	if code := exitCodeOf(t, err); code != exitcode.Safety {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitcode.Safety, screen.String())
	}
	// The last words may still be on their way through the pty after exit.
	waitFor(t, func() bool {
		return strings.Contains(screen.String(), "no MFA code for profile deployer: interrupt at the prompt; nothing was published")
	})
	if asked := strings.Count(screen.String(), "MFA code for profile deployer: ") - strings.Count(screen.String(), "no MFA code for profile deployer: "); asked != 1 {
		t.Errorf("asked for the code again after Ctrl-C:\n%s", screen.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if r := b.tryRequest(ctx); r != nil {
		t.Errorf("a run stopped at the MFA prompt published %+v", r)
	}
}

// SIGTERM at the MFA prompt stops it without waiting for a line, with a
// safety stop; a second call (another AWS call wanting credentials) does
// not ask again.
func TestMFAPrompterStopsOnSignal(t *testing.T) {
	stdin, typing := io.Pipe() // nothing is ever typed
	defer typing.Close()
	var stderr bytes.Buffer
	sigs := make(chan os.Signal, 1)
	a := newApp(func(string) string { return "" }, stdin, io.Discard, &stderr, sigs)
	a.stdinTTY = true
	ask := a.mfaPrompter(context.Background(), "deployer")
	sigs <- syscall.SIGTERM
	for i := 0; i < 2; i++ {
		done := make(chan error, 1)
		go func() { _, err := ask(); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the MFA prompt waits for a line after SIGTERM")
		}
		mfa := mfaInterrupted(err)
		if mfa == nil || exitcode.Code(mfa.exit()) != exitcode.Safety || mfa.Error() != "no MFA code for profile deployer: terminated at the prompt" {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	a.flush()
	if n := strings.Count(stderr.String(), "MFA code for profile deployer: ") - strings.Count(stderr.String(), "no MFA code"); n != 1 {
		t.Errorf("asked %d times:\n%s", n, stderr.String())
	}
}

// Network errors while getting a profile's credentials say so; they are not
// "no AWS credentials were found".
func TestProfileCredentialErrorsAreClassifiedByType(t *testing.T) {
	netErr := &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	pe := &profileCredentialsError{profile: "deployer", endpoint: "http://127.0.0.1:4566", err: fmt.Errorf("operation error STS: AssumeRole, %w", netErr)}
	if isNoCredentials(fmt.Errorf("failed to refresh cached credentials, %w", pe)) {
		t.Error("a network error of a profile reads as no credentials")
	}
	if got := pe.Error(); !strings.Contains(got, "could not reach STS at http://127.0.0.1:4566 to get the credentials of profile deployer") || !strings.Contains(got, "connection refused") {
		t.Errorf("message %q", got)
	}
	denied := &profileCredentialsError{profile: "deployer", err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to assume"}}
	if got := denied.Error(); got != "AWS STS refused the credentials of profile deployer: AccessDenied: not authorized to assume" {
		t.Errorf("message %q", got)
	}
	imds := fmt.Errorf("failed to refresh cached credentials, no EC2 IMDS role found, %w", &smithy.OperationError{ServiceID: "ec2imds", OperationName: "GetMetadata", Err: netErr})
	if !isNoCredentials(imds) {
		t.Error("the chain falling through to IMDS is no credentials")
	}
}

// Access keys in the environment win over an exported AWS_PROFILE, as for
// the AWS CLI: local mode's env file no longer needs AWS_PROFILE= (empty).
func TestEnvironmentKeysWinOverAmbientProfile(t *testing.T) {
	t.Parallel()
	b := startScripted(t, "deploy-broker")
	var stdout, stderr bytes.Buffer
	a := newApp(b.env("AWS_PROFILE=someone-elses"), strings.NewReader(""), &stdout, &stderr, nil)
	if err := a.main(context.Background(), []string{"--dry-run", "website"}); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
}

// With no credentials anywhere (the SDK chain falls through to instance
// metadata, disabled here), the binary says so, by type rather than text.
func TestNoCredentialsIsSaidSo(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	b := startScripted(t, "deploy-broker")
	cmd := exec.Command(filepath.Join(bin, "deploy-trigger"), "--dry-run", "website")
	cmd.Env = append(b.srv.Env("us-east-1"), "DEPLOY_TRIGGER_TOPIC_ARN="+b.topicARN, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=",
		"HOME="+t.TempDir(), "HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1", "PATH="+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if code := exitCodeOf(t, err); code != exitcode.Broker || !strings.Contains(string(out), "no AWS credentials were found") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// Once the run is out, the MFA prompt (asked again when the session
// expires mid-run) leaves Ctrl-C to the watch loop, which cancels the run:
// the signal is not taken by the prompt, which goes on waiting for the
// code the cancel needs.
func TestMFAPromptMidRunLeavesCtrlCToTheWatch(t *testing.T) {
	stdin, typing := io.Pipe()
	defer typing.Close()
	sigs := make(chan os.Signal, 1)
	a := newApp(func(string) string { return "" }, stdin, io.Discard, io.Discard, sigs)
	a.stdinTTY = true
	a.watching.Store(true)
	ask := a.mfaPrompter(context.Background(), "deployer")
	done := make(chan string, 1)
	go func() {
		code, err := ask()
		if err != nil {
			code = "error: " + err.Error()
		}
		done <- code
	}()
	sigs <- os.Interrupt
	select {
	case got := <-done:
		t.Fatalf("the prompt ended on the watch loop's Ctrl-C: %q", got)
	case <-time.After(300 * time.Millisecond):
	}
	select {
	case <-sigs: // still there for the watch loop
	default:
		t.Fatal("the prompt took the signal meant for the watch loop")
	}
	if _, err := io.WriteString(typing, "123456\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != "123456" {
			t.Fatalf("code %q, want 123456", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt did not return the typed code")
	}
}
