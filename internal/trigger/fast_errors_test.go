package trigger

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// The mistakes a new user makes first each get one line naming the cause
// and the fix, and an exit code, at once: the broker's endpoint not
// running, no credentials, a topic that does not exist, a topic ARN in the
// wrong region, an identity the broker does not trust. Each runs the real
// binary against the local broker (moto on loopback); the 30 s bound is a
// guard against a hang, not a timing figure (before, these took 10–22 s of
// retries, or the 2m --queue-timeout, and ended in a raw SDK chain).
func TestFastHumanErrors(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more
	stranger, _, err := b.EnvAs(context.Background(), "arn:aws:iam::111111111111:role/stranger", "gha-1")
	if err != nil {
		t.Fatal(err)
	}
	topic := b.TopicARN()
	name := topic[strings.LastIndex(topic, ":")+1:]
	for _, c := range []struct {
		name string
		env  []string
		code int
		say  []string
	}{
		{"broker-not-running", []string{"AWS_ENDPOINT_URL=" + closed}, exitcode.Broker,
			[]string{"nothing answers at " + closed, "connection refused", "is the local broker running"}},
		{"broker-not-running-dry-run", []string{"AWS_ENDPOINT_URL=" + closed, "DEPLOY_TRIGGER_DRY_RUN=true"}, exitcode.Broker,
			[]string{"nothing answers at " + closed, "is the local broker running"}},
		{"no-credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}, exitcode.Broker,
			[]string{"no AWS credentials were found", "AWS_PROFILE"}},
		{"no-such-topic", []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + strings.TrimSuffix(topic, name) + "no-such-topic"}, exitcode.Usage,
			[]string{"topic no-such-topic does not exist in account", "check the topic ARN"}},
		{"wrong-region", []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + strings.Replace(topic, ":us-east-1:", ":eu-west-3:", 1)}, exitcode.Usage,
			[]string{"topic " + name + " does not exist in account", "region eu-west-3", "check the topic ARN"}},
		// A principal the broker verifies but does not trust is told so on
		// its run queue at once.
		{"verified-but-untrusted", stranger, exitcode.Rejected,
			[]string{"role/stranger", "is not one of this broker's trusted principals"}},
		// One local mode's endpoint does not know (here the emulator's
		// default user, whose secret is no secret) is refused at once, as
		// AWS refuses an unknown key: the endpoint verifies signatures.
		{"unverifiable-identity", []string{"AWS_ACCESS_KEY_ID=" + moto.AccessKeyID, "AWS_SECRET_ACCESS_KEY=test", "AWS_SESSION_TOKEN=", "DEPLOY_TRIGGER_QUEUE_TIMEOUT=20s"}, exitcode.Broker,
			[]string{"AWS does not recognise these credentials (InvalidClientTokenId)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := triggerCmd(bin, b, "--output", "plain", "sleeper")
			cmd.Env = append(cmd.Env, c.env...)
			var out testutil.SyncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			err := waitExit(t, cmd, 30*time.Second, "on "+c.name, &out)
			code := exitCodeOf(t, err)
			t.Logf("%s: exit %d after %s:\n%s", c.name, code, time.Since(start).Round(100*time.Millisecond), out.String())
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			for _, s := range c.say {
				if !strings.Contains(out.String(), s) {
					t.Errorf("the output does not say %q", s)
				}
			}
			if ee, ok := err.(*exec.ExitError); ok && !ee.Exited() {
				t.Errorf("killed: %v", ee)
			}
		})
	}
}

// The readers (jobs, runs, approve) say the same one line when the broker's
// endpoint does not answer: before, jobs said it after the SDK's eight
// attempts at reading the broker's view (about 12 s) and runs printed the
// raw SDK chain ("exceeded maximum number of attempts"). That the line
// comes from the first call (sts:GetCallerIdentity, two attempts) and not
// from the read is what the test asserts: no "reading the broker's
// published view" or "querying the run history" in it.
func TestFastHumanErrorsOfTheReaders(t *testing.T) {
	t.Parallel()
	b, bin := startLocal(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more
	for _, args := range [][]string{
		{"jobs"},
		{"runs", "--ledger-table", "deploy-broker-runs"}, // the table given: no view read
		{"runs"},
		{"approve", "--yes", "01M94NA5GDQC1CTTY615PRXS8A"},
	} {
		t.Run(strings.Join(args[:min(2, len(args))], " "), func(t *testing.T) {
			cmd := triggerCmd(bin, b, args...)
			cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL="+closed)
			var out testutil.SyncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			code := exitCodeOf(t, waitExit(t, cmd, 30*time.Second, "on "+strings.Join(args, " "), &out))
			if code != exitcode.Broker || !strings.Contains(out.String(), "nothing answers at "+closed) || !strings.Contains(out.String(), "is the local broker running") {
				t.Errorf("%v: exit %d, want 247 and the one line:\n%s", args, code, out.String())
			}
			for _, late := range []string{"reading the broker's published view", "querying the run history", "exceeded maximum number of attempts"} {
				if strings.Contains(out.String(), late) {
					t.Errorf("%v: said after the read's retries (%q), not at the first call:\n%s", args, late, out.String())
				}
			}
		})
	}
}

// The classification behind the fast errors, on errors as the SDK wraps
// them: refused is certain (with a single endpoint it names the local
// broker), a name that does not resolve points at the region, and a
// timeout is left to the retries of publishing.
func TestUnreachableErrorClassification(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "https://sts.eu-west-1.amazonaws.com/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	noHost := &url.Error{Op: "Post", URL: "https://sts.eu-wset-1.amazonaws.com/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "sts.eu-wset-1.amazonaws.com", IsNotFound: true}}}
	timeout := &url.Error{Op: "Post", URL: "https://sts.eu-west-1.amazonaws.com/", Err: context.DeadlineExceeded}
	for _, c := range []struct {
		err      error
		endpoint string
		want     string // "" for nil
	}{
		{refused, "http://127.0.0.1:4566", "is the local broker running"},
		{refused, "", "nothing answers at https://sts.eu-west-1.amazonaws.com (connection refused)"},
		{noHost, "", "the host name sts.eu-wset-1.amazonaws.com does not resolve: check the region in the topic ARN"},
		{timeout, "", ""},
		{timeout, "http://127.0.0.1:4566", ""},
	} {
		err := unreachableError(fmt.Errorf("operation error STS: GetCallerIdentity: %w", c.err), c.endpoint)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v (endpoint %q): %v, want nil", c.err, c.endpoint, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || exitcode.Code(err) != exitcode.Broker):
			t.Errorf("%v (endpoint %q): %v, want %q (247)", c.err, c.endpoint, err, c.want)
		}
	}
}
