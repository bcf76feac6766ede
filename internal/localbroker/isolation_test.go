package localbroker

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

func TestIsolationEnvironmentOfALocalTask(t *testing.T) {
	open, err := os.MkdirTemp("", "open-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(t.TempDir(), "cfg") // t.TempDir's own directory is 0700
	if err := os.Mkdir(closed, 0o755); err != nil {
		t.Fatal(err)
	}
	task := ecstypes.Task{TaskDefinitionArn: aws.String("arn:aws:ecs:us-east-1:123456789012:task-definition/b-deploy:3"),
		Tags: []ecstypes.Tag{{Key: aws.String(protocol.TagRequester), Value: aws.String("arn:aws:sts::1:assumed-role/ci/x")}}}
	var logs strings.Builder
	a := &agent{account: "123456789012", dir: open, log: slog.New(slog.NewTextHandler(&logs, nil)), uidLocks: filepath.Join(t.TempDir(), "uids")}
	isolation := func() []string {
		t.Helper()
		env, lease, err := a.isolation(task)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lease.release() })
		return env
	}
	first, second := isolation(), isolation()
	base := []string{protocol.EnvJobRoleARN + "=arn:aws:iam::123456789012:role/deploy-broker-local/b-deploy",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", protocol.EnvRequester + "=arn:aws:sts::1:assumed-role/ci/x"}
	if os.Geteuid() != 0 {
		if !slices.Equal(first, base) || !slices.Equal(second, base) {
			t.Fatalf("not root: %q, %q", first, second)
		}
		a.sayIsolation()
		if !strings.Contains(logs.String(), "not running as root") {
			t.Fatalf("not root, and the log does not say so: %s", logs.String())
		}
		return
	}
	// Root: a uid per run, while the configuration's directory is open
	// (61000 on, unless a uid has processes: uids_test.go).
	uidOf := func(env []string) int {
		if !slices.Equal(env[:len(base)], base) || len(env) != len(base)+1 || !strings.HasPrefix(env[len(base)], runner.EnvJobUID+"=") {
			t.Fatalf("root: %q", env)
		}
		uid, _ := strconv.Atoi(strings.TrimPrefix(env[len(base)], runner.EnvJobUID+"="))
		return uid
	}
	if u1, u2 := uidOf(first), uidOf(second); u1 < localJobUIDBase || u2 <= u1 || u2 >= localJobUIDBase+localJobUIDs {
		t.Fatalf("root: uids %d, %d", u1, u2)
	}
	a.dir = closed
	if got := isolation(); !slices.Equal(got, append(base, runner.EnvJobUID+"="+runner.JobUIDSame)) {
		t.Fatalf("root, closed directory: %q", got)
	}
	a.sayIsolation()
	if !strings.Contains(logs.String(), "is closed to other users") {
		t.Fatalf("the log does not say why jobs run as root: %s", logs.String())
	}
}
