// Package e2e runs the real binaries through the whole local flow:
// deploy-trigger → SNS (moto) → dispatcher handler → ECS RunTask (moto) →
// local agent → deploy-runner → SQS FIFO (moto) → deploy-trigger.
package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

var bins e2etest.Bins

func TestMain(m *testing.M) { e2etest.Main(m, &bins) }

const configPath = "testdata/broker.yaml"

var jobLine = regexp.MustCompile(`^line (\d+) (out|err)$`)

// jobLines keeps the lines the job wrote, dropping deploy-trigger's own
// status lines.
func jobLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if jobLine.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func TestRunStreamsEveryLineInOrderAndPassesTheExitCode(t *testing.T) {
	b := e2etest.StartBroker(t, bins, configPath, localbroker.Options{})
	r := e2etest.Trigger{Bins: bins}.Run(t, b, "chatter", "lines=2000", "code=3")

	if r.Code != 3 {
		t.Errorf("exit code = %d, want the job's 3\nstderr:\n%s", r.Code, e2etest.Tail(r.Stderr, 30))
	}
	var wantOut, wantErr []string
	for i := 1; i <= 2000; i++ {
		if i%2 == 1 {
			wantOut = append(wantOut, fmt.Sprintf("line %d out", i))
		} else {
			wantErr = append(wantErr, fmt.Sprintf("line %d err", i))
		}
	}
	// Every stdout line on stdout, once, in order, and nothing else there.
	if d := e2etest.Diff(strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n"), wantOut); d != "" {
		t.Errorf("stdout: %s", d)
	}
	// Every stderr line on stderr, once, in order (deploy-trigger's own
	// status lines also go to stderr and are skipped).
	if d := e2etest.Diff(jobLines(r.Stderr), wantErr); d != "" {
		t.Errorf("stderr: %s", d)
	}
}

func TestUnknownJobIsRejectedPromptlyAndLaunchesNothing(t *testing.T) {
	b := e2etest.StartBroker(t, bins, configPath, localbroker.Options{})
	r := e2etest.Trigger{Bins: bins}.Run(t, b, "no-such-job", "version=1")

	if r.Code != exitcode.Rejected {
		t.Errorf("exit code = %d, want %d (rejected)\nstderr:\n%s", r.Code, exitcode.Rejected, r.Stderr)
	}
	if !strings.Contains(r.Stderr, `job "no-such-job" is not in this broker's catalogue`) {
		t.Errorf("stderr does not give the dispatcher's reason:\n%s", r.Stderr)
	}
	awsCfg, err := b.Server.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
		out, err := ecs.NewFromConfig(awsCfg).ListTasks(context.Background(), &ecs.ListTasksInput{
			Cluster: aws.String(b.Resources.ClusterARN), DesiredStatus: status})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.TaskArns) != 0 {
			t.Errorf("a rejected request launched tasks: %v", out.TaskArns)
		}
	}
}

// The job's static environment from the catalogue reaches the job, as the
// task definition's environment does in ECS.
func TestTaskDefinitionEnvironmentReachesTheJob(t *testing.T) {
	b := e2etest.StartBroker(t, bins, configPath, localbroker.Options{})
	r := e2etest.Trigger{Bins: bins}.Run(t, b, "envecho")
	if r.Code != 0 || r.Stdout != "hello from the task definition\n" {
		t.Errorf("exit %d, stdout %q\n%s", r.Code, r.Stdout, r.Stderr)
	}
}
