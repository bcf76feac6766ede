package localbroker

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	a := &agent{account: "123456789012", dir: open, log: slog.New(slog.NewTextHandler(&logs, nil))}
	first, second := a.isolation(task), a.isolation(task)
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
	// Root: a uid per run, while the configuration's directory is open.
	if !slices.Equal(first, append(base, runner.EnvJobUID+"=61000")) || !slices.Equal(second, append(base, runner.EnvJobUID+"=61001")) {
		t.Fatalf("root: %q, %q", first, second)
	}
	a.dir = closed
	if got := a.isolation(task); !slices.Equal(got, append(base, runner.EnvJobUID+"="+runner.JobUIDSame)) {
		t.Fatalf("root, closed directory: %q", got)
	}
	a.sayIsolation()
	if !strings.Contains(logs.String(), "is closed to other users") {
		t.Fatalf("the log does not say why jobs run as root: %s", logs.String())
	}
}
