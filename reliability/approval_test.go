package reliability

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
)

// TestApprovalByASecondIdentityInLocalMode: local mode with two moto
// identities. A run of job gated (approvers: role approver) requested as
// local mode's own identity (a session of role ci) waits; `deploy-trigger
// approve RUN_ID` as the requester changes nothing; the same command as a
// session of role approver starts it.
func TestApprovalByASecondIdentityInLocalMode(t *testing.T) {
	b := e2etest.StartBroker(t, bins, configPath, localbroker.Options{})
	ctx := context.Background()
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runID, body := signedRunRequest(t, b, "gated", nil)
	if _, err := sns.NewFromConfig(awsCfg).Publish(ctx, &sns.PublishInput{TopicArn: aws.String(b.TopicARN()), Message: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	ecsc := ecs.NewFromConfig(awsCfg)
	tasks := func() int {
		arns := map[string]bool{} // moto may list a task under both desired statuses
		for _, st := range []ecstypes.DesiredStatus{ecstypes.DesiredStatusRunning, ecstypes.DesiredStatusStopped} {
			out, err := ecsc.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(b.Resources.ClusterARN), StartedBy: aws.String(runID), DesiredStatus: st})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range out.TaskArns {
				arns[a] = true
			}
		}
		return len(arns)
	}
	time.Sleep(2 * time.Second)
	if n := tasks(); n != 0 {
		t.Fatalf("%d tasks before approval", n)
	}
	// The requester cannot approve its own run.
	self := e2etest.Trigger{Bins: bins}.Run(t, b, "approve", runID)
	if self.Code != 0 || !strings.Contains(self.Stderr, "approval of run "+runID+" sent as") {
		t.Fatalf("deploy-trigger approve: exit %d\n%s", self.Code, self.Stderr)
	}
	time.Sleep(2 * time.Second)
	if n := tasks(); n != 0 {
		t.Fatalf("the requester's own approval started %d tasks", n)
	}
	// A second person can.
	env, arn, err := b.EnvAs(ctx, b.ApproverRole(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	r := e2etest.Trigger{Bins: bins, Env: env}.Run(t, b, "approve", runID)
	if r.Code != 0 || !strings.Contains(r.Stderr, arn) {
		t.Fatalf("approve as %s: exit %d\n%s", arn, r.Code, r.Stderr)
	}
	deadline := time.Now().Add(20 * time.Second)
	for tasks() == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	n := tasks()
	if n != 1 {
		t.Errorf("%d tasks after the approval, want 1", n)
	}
	t.Logf("RESULT scenario=approval_two_identities self_approval_tasks=0 approved_tasks=%d approver=%s", n, arn)
}
