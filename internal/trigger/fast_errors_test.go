package trigger

import (
	"net"
	"os/exec"
	"strings"
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
		{"no-credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}, exitcode.Broker,
			[]string{"no AWS credentials were found", "AWS_PROFILE"}},
		{"no-such-topic", []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + strings.TrimSuffix(topic, name) + "no-such-topic"}, exitcode.Usage,
			[]string{"topic no-such-topic does not exist in account", "check the topic ARN"}},
		{"wrong-region", []string{"DEPLOY_TRIGGER_TOPIC_ARN=" + strings.Replace(topic, ":us-east-1:", ":eu-west-3:", 1)}, exitcode.Usage,
			[]string{"topic " + name + " does not exist in account", "region eu-west-3", "check the topic ARN"}},
		{"untrusted-identity", []string{"AWS_ACCESS_KEY_ID=" + moto.AccessKeyID, "AWS_SECRET_ACCESS_KEY=test", "AWS_SESSION_TOKEN=", "DEPLOY_TRIGGER_QUEUE_TIMEOUT=20s"}, exitcode.StartTimeout,
			[]string{"waiting for the broker", "not among its trusted principals"}},
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
