package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// motoConfig is the AWS configuration of the package's shared moto server.
func motoConfig(t *testing.T) aws.Config {
	t.Helper()
	sqsClient(t)
	cfg, err := motoServer.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestJobEnvironmentKeepsOnlyWhatIsTheJobs(t *testing.T) {
	runner := []string{
		"PATH=/usr/bin", "HOME=/tmp", "AWS_REGION=eu-west-1", "AWS_ENDPOINT_URL=http://127.0.0.1:5000", "DB_PASSWORD=hunter22",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/0b1c", "AWS_ACCESS_KEY_ID=AKIAX", "AWS_SECRET_ACCESS_KEY=s",
		"AWS_SESSION_TOKEN=t", "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN=x",
		"AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token", "AWS_ROLE_ARN=arn:aws:iam::1:role/task", "AWS_PROFILE=ops",
		protocol.EnvRunID + "=R", protocol.EnvJob + "=deploy", protocol.EnvDeadline + "=2030-01-01T00:00:00Z", protocol.EnvOutput + "=/tmp/o",
		protocol.EnvParamPrefix + "TOKEN=p", protocol.EnvQueueURL + "=https://sqs/q", protocol.EnvRedact + "=DB_PASSWORD",
		protocol.EnvHeartbeat + "=10s", protocol.EnvGrace + "=10s", EnvRedactLocal + "=true", EnvSendTimeout + "=1m",
		EnvCompress + "=off", protocol.EnvLogFormat + "=records", protocol.EnvJobRoleARN + "=arn:aws:iam::1:role/d",
		protocol.EnvRequester + "=arn:aws:sts::1:assumed-role/ci/s", EnvJobUID + "=10002", "DEPLOY_BROKER_FUTURE=x",
	}
	got := jobEnvironment(runner, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok")
	want := []string{
		"PATH=/usr/bin", "HOME=/tmp", "AWS_REGION=eu-west-1", "AWS_ENDPOINT_URL=http://127.0.0.1:5000", "DB_PASSWORD=hunter22", "AWS_PROFILE=ops",
		protocol.EnvRunID + "=R", protocol.EnvJob + "=deploy", protocol.EnvDeadline + "=2030-01-01T00:00:00Z", protocol.EnvOutput + "=/tmp/o",
		protocol.EnvParamPrefix + "TOKEN=p",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("job environment\n got %q\nwant %q", got, want)
	}
}

// The job's credentials endpoint, read by aws-sdk-go-v2's own container
// credentials provider (endpointcreds, what the SDK's default chain uses for
// AWS_CONTAINER_CREDENTIALS_FULL_URI) behind the SDK's credentials cache:
// the SDK gets the deployment role's session (session name the run id, as
// moto's GetCallerIdentity shows), and when the session it holds is due it
// asks again and gets a new session (a new AssumeRole), as a job past the
// role-chaining hour does. The refresh is forced by windows longer than the
// session (the SDK's cache and the runner's both consider every session
// due), not by waiting an hour. What moto does not show: the source
// identity and session tags (it accepts and ignores them; the request
// carries them, see TestSessionTagsAndSourceIdentity) and IAM's trust
// policy checks.
func TestJobCredentialsEndpointServesAndRefreshesTheDeploymentRole(t *testing.T) {
	cfg := motoConfig(t)
	ctx := context.Background()
	// moto's AssumeRole needs no role made first (nor checks a trust policy).
	roleName := fmt.Sprintf("deploy-%d", time.Now().UnixNano())
	roleARN := "arn:aws:iam::123456789012:role/" + roleName
	const runID = "01JDTESTRUN0000000000000000"
	p, err := JobRoleProvider(sts.NewFromConfig(cfg), roleARN, runID, "deploy", "arn:aws:sts::123456789012:assumed-role/ci/gh", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := startCredsServer(p, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	env := map[string]string{}
	for _, kv := range cs.env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if !strings.HasPrefix(env[envCredsFullURI], "http://127.0.0.1:") || len(env[envCredsToken]) != 64 {
		t.Fatalf("endpoint environment %v", env)
	}
	sdk := aws.NewCredentialsCache(endpointcreds.New(env[envCredsFullURI], func(o *endpointcreds.Options) {
		o.AuthorizationToken = env[envCredsToken]
	}), func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 2 * time.Hour })
	var keys []string
	for i := 0; i < 2; i++ {
		c, err := sdk.Retrieve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !c.CanExpire || c.SessionToken == "" {
			t.Fatalf("credentials %d: expire %v, token %d bytes", i, c.CanExpire, len(c.SessionToken))
		}
		keys = append(keys, c.AccessKeyID)
		who, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.Credentials = aws.NewCredentialsCache(sdk) }).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		if arn := aws.ToString(who.Arn); !strings.HasSuffix(arn, ":assumed-role/"+roleName+"/"+runID) {
			t.Fatalf("the job calls AWS as %s, not the deployment role's session for the run", arn)
		}
	}
	if keys[0] == keys[1] {
		t.Fatalf("the SDK got the same session twice (%s): no refresh", keys[0])
	}

	// Without the run's token, nothing.
	for _, tok := range []string{"", strings.Repeat("0", 64)} {
		req, _ := http.NewRequest(http.MethodGet, env[envCredsFullURI], nil)
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("token %q: status %d", tok, resp.StatusCode)
		}
	}
}

func TestSessionTagsAndSourceIdentity(t *testing.T) {
	tags := SessionTags("01JDTESTRUN0000000000000000", "deploy", "arn:aws:sts::1:assumed-role/ci/gh#1 (x)")
	var got []string
	for _, tg := range tags {
		got = append(got, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	want := []string{protocol.TagRunID + "=01JDTESTRUN0000000000000000", protocol.TagJob + "=deploy", protocol.TagRequester + "=arn:aws:sts::1:assumed-role/ci/gh_1 _x_"}
	if !slices.Equal(got, want) {
		t.Fatalf("tags %q, want %q", got, want)
	}
	if len(SessionTags("R1", "", "")) != 1 {
		t.Fatal("empty job and requester must give no tags")
	}
	for id, ok := range map[string]bool{"01JDTESTRUN0000000000000000": true, "a": false, strings.Repeat("a", 65): false, "run/1": false, "run:1": false, "a_b+c=d,e.f@g-h": true} {
		if sourceIdentityOK(id) != ok {
			t.Errorf("sourceIdentityOK(%q) = %v", id, !ok)
		}
	}
}

// A job that replaces its outputs file with a symlink to a file it may not
// read (here: any file; the runner used to open the path again, as root in
// the container) gets nothing of that file into its outputs.
func TestOutputsFileReplacedBySymlinkIsNotFollowed(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("leak=AWS_CONTAINER_CREDENTIALS_RELATIVE_URI\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := sqsClient(t)
	url := createQueue(t, client)
	c := testConfig(t, url, []string{"/bin/sh", "-c", `rm -f "$DEPLOY_BROKER_OUTPUT" && ln -s "$1" "$DEPLOY_BROKER_OUTPUT"; exit 3`, "sh", secret}, os.Environ())
	res := Run(context.Background(), c, client)
	if res.Exit.Code != 3 || len(res.Exit.Outputs) != 0 {
		t.Fatalf("exit %d, outputs %+v: the runner followed the job's symlink", res.Exit.Code, res.Exit.Outputs)
	}
}

// A job that sends forged records to its run queue with the deduplication
// ids the runner used to use ("runner-<seq>") cannot make SQS drop the
// runner's own records: every genuine record arrives, the exit record with
// the job's code among them. (That the job has no credentials to send at
// all is IAM's part, the deployment role's denies, which moto does not
// evaluate; here the forged messages are sent with the test's.)
func TestForgedDeduplicationIdsDropNothing(t *testing.T) {
	client := sqsClient(t)
	url := createQueue(t, client)
	ctx := context.Background()
	for seq := 1; seq <= 20; seq++ {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("forged"),
			MessageGroupId: aws.String("01JDTESTRUN0000000000000000"), MessageDeduplicationId: aws.String(fmt.Sprintf("runner-%d", seq))}); err != nil {
			t.Fatal(err)
		}
	}
	argv, env := jobArgs("exit", "3")
	res := Run(ctx, testConfig(t, url, argv, env), client)
	if !res.Delivered {
		t.Fatalf("result %+v", res)
	}
	forged, genuine := 0, 0
	var exit *protocol.Exit
	for empty := 0; empty < 2; {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			recs, err := protocol.DecodeMessage([]byte(aws.ToString(m.Body)))
			if err != nil {
				forged++
				continue
			}
			genuine++
			for _, r := range recs {
				if r.Exit != nil {
					exit = r.Exit
				}
			}
		}
	}
	if forged != 20 || genuine != res.Messages || exit == nil || exit.Code != 3 {
		t.Fatalf("forged %d of 20, genuine messages %d of %d, exit %+v", forged, genuine, res.Messages, exit)
	}
}

// As root (the container, CI), the job runs under another uid and cannot
// read the runner's environment nor write to its stdout.
func TestJobRunsUnderAnotherUID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux's /proc")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (the container and CI run the runner as root)")
	}
	client := sqsClient(t)
	url := createQueue(t, client)
	script := `id -u; cat /proc/$PPID/environ >/dev/null 2>&1 && echo READ-PARENT-ENV; echo FORGED >/proc/$PPID/fd/1 2>/dev/null && echo WROTE-PARENT-FD; ` +
		`env | grep -c -e AWS_CONTAINER_CREDENTIALS_RELATIVE_URI -e DEPLOY_BROKER_QUEUE_URL; exit 3`
	c := testConfig(t, url, []string{"/bin/sh", "-c", script}, append(os.Environ(), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/x", protocol.EnvQueueURL+"="+url))
	c.JobCred = &syscall.Credential{Uid: 10002, Gid: 10002, Groups: []uint32{}}
	res := Run(context.Background(), c, client)
	r := receiveRun(t, client, url, 30*time.Second)
	out, _, _ := r.streams(t)
	if res.Exit.Code != 3 || string(out) != "10002\n0\n" {
		t.Fatalf("exit %d, job stdout %q", res.Exit.Code, out)
	}
}

// Not root (the image's default USER, local mode as a user), the job runs
// under the runner's uid, and the runner's being non-dumpable is what keeps
// the job out of its environment and its stdout. Run here as root by
// starting the "runner" (the test binary in job mode "hardened") as nobody.
func TestNonDumpableRunnerRefusesAJobOfTheSameUID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux's /proc")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the runner as another user")
	}
	dir, err := os.MkdirTemp("", "hardened-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "runner.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `cat /proc/$PPID/environ >/dev/null 2>&1 && echo READ-ENV; echo x >/proc/$PPID/fd/1 2>/dev/null && echo WROTE-FD; ` +
		`cat /proc/$PPID/maps >/dev/null 2>&1 && echo READ-MAPS; id -u`
	cmd := exec.Command(bin, script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", jobEnv + "=hardened", "SECRET=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if string(out) != "65534\n" {
		t.Fatalf("a job of the runner's own uid got through: %q", out)
	}
}

func TestNotRootSaysTheJobSharesItsUID(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	if c := jobCredential(0, 1000, log); c != nil || !strings.Contains(b.String(), "the runner is not root") {
		t.Fatalf("not root: credential %+v, log %q", c, b.String())
	}
	if c := jobCredential(0, 0, log); c == nil || c.Uid != DefaultJobUID || c.Gid != DefaultJobUID || len(c.Groups) != 0 {
		t.Fatalf("root: credential %+v", c)
	}
	if c := jobCredential(61007, 0, log); c == nil || c.Uid != 61007 {
		t.Fatalf("root with a job uid: credential %+v", c)
	}
	if c := jobCredential(-1, 0, log); c != nil || !strings.Contains(b.String(), EnvJobUID+"="+JobUIDSame) {
		t.Fatalf("root, %s: credential %+v", JobUIDSame, c)
	}
	base := []string{protocol.EnvRunID + "=01JDTESTRUN0000000000000000", protocol.EnvQueueURL + "=https://q"}
	for v, want := range map[string]int{"": 0, "61007": 61007, JobUIDSame: -1, "0": 0, "-5": 0, "x": 0} {
		c, err := ParseConfig([]string{"true"}, append(base, EnvJobUID+"="+v))
		bad := v == "0" || v == "-5" || v == "x"
		if (err != nil) != bad || c.JobUID != want {
			t.Errorf("%s=%q: uid %d, err %v", EnvJobUID, v, c.JobUID, err)
		}
	}
}

// A deployment role the runner cannot assume (a trust policy without the
// runner's role) is said in the job's own log, and the job still runs.
func TestUnassumableRoleIsSaidInTheJobsLog(t *testing.T) {
	res, r := runJob(t, func(c *Config) {
		c.JobRoleARN = "arn:aws:iam::123456789012:role/deploy"
		c.JobCreds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, fmt.Errorf("AccessDenied: not authorized to perform sts:AssumeRole")
		})
	}, "exit", "3")
	_, errOut, _ := r.streams(t)
	want := credsNoticePrefix + "the job has no AWS credentials: cannot assume the deployment role: AccessDenied: not authorized to perform sts:AssumeRole\n"
	if res.Exit.Code != 3 || string(errOut) != want {
		t.Fatalf("exit %d, stderr %q", res.Exit.Code, errOut)
	}
}

// The endpoint's answer: the container-credentials fields, and an
// Expiration the refresh window before the session's real end.
func TestCredentialsEndpointAnswer(t *testing.T) {
	end := time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)
	p := aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret", SessionToken: "token", CanExpire: true, Expires: end}, nil
	}), func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = DefaultCredsRefresh })
	cs, err := startCredsServer(p, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	req, _ := http.NewRequest(http.MethodGet, cs.url, nil)
	req.Header.Set("Authorization", cs.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "secret", "Token": "token", "Expiration": "2030-01-01T00:40:00Z"}
	if resp.StatusCode != http.StatusOK || fmt.Sprint(got) != fmt.Sprint(want) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, answer %v, want %v", resp.StatusCode, got, want)
	}
}
