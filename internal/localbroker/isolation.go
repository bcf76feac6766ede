package localbroker

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

// Run isolation in local mode (issue 22), as in the container: each runner
// gets a deployment role to assume for its job (the emulator's STS issues
// the session; the job reads it from the runner's credentials endpoint)
// and, when local mode runs as root (CI), a job uid of its own, so that a
// job can read neither its runner nor a sibling run's job.

// localJobUIDBase is the first job uid local mode hands out; runs take
// localJobUIDs uids in turn.
const (
	localJobUIDBase = 61000
	localJobUIDs    = 1000
)

// DeploymentRolePath is the IAM path of the deployment roles local mode's
// runners assume: "arn:aws:iam::<account>:role" + DeploymentRolePath + the
// job's task definition family. The emulator has no such role and needs
// none (its STS assumes any ARN); the name says whose it is in
// GetCallerIdentity, and the IAM evaluation (infra/internal/iamcheck) maps it
// to the stack's deployment role of that family's job.
const DeploymentRolePath = "/deploy-broker-local/"

// localJobRoleARN is the deployment role a local run's runner assumes.
func (a *agent) localJobRoleARN(family string) string {
	return "arn:aws:iam::" + a.account + ":role" + DeploymentRolePath + family
}

// isolation is the runner environment a task adds to the task definition's
// and the overrides': the deployment role, the requester from the task's
// tag, and a job uid when root, leased until the run ends (uids.go).
func (a *agent) isolation(task ecstypes.Task) ([]string, *uidLease, error) {
	env := []string{protocol.EnvJobRoleARN + "=" + a.localJobRoleARN(taskFamily(aws.ToString(task.TaskDefinitionArn))),
		// As in a container, no AWS configuration files: the SDKs would
		// take the user's own default profile before the job's
		// credentials endpoint. (The runner's own keys are in its
		// environment, which wins over files.)
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
	for _, tg := range task.Tags {
		if aws.ToString(tg.Key) == protocol.TagRequester {
			env = append(env, protocol.EnvRequester+"="+aws.ToString(tg.Value))
		}
	}
	if a.root() && !a.jobUIDsUnreachable() {
		a.mu.Lock()
		start := a.nextUID
		a.nextUID++
		a.mu.Unlock()
		dir := a.uidLocks
		if dir == "" {
			dir = uidLockDir()
		}
		lease, err := leaseUID(dir, start)
		if err != nil {
			return nil, nil, fmt.Errorf("no uid for the job: %w", err)
		}
		a.mu.Lock()
		a.nextUID = lease.uid - localJobUIDBase + 1
		a.mu.Unlock()
		return append(env, runner.EnvJobUID+"="+strconv.Itoa(lease.uid)), lease, nil
	} else if a.root() {
		env = append(env, runner.EnvJobUID+"="+runner.JobUIDSame)
	}
	return env, nil, nil
}

// releaseUID kills what is left of a run's job uid and lets the uid go.
func (a *agent) releaseUID(t *localTask) {
	if err := t.uid.release(); err != nil {
		a.log.Error("agent: the job uid of a finished run keeps processes; it stays taken", "run_id", t.runID, "uid", t.uid.uid, "error", err.Error())
	}
}

// jobUIDsUnreachable says whether a job uid could not reach the runners'
// working directory (the configuration's): some directory on its path is
// closed to other users (a checkout under /root). Jobs then run as root, as
// before run isolation, and sayIsolation says so.
func (a *agent) jobUIDsUnreachable() bool {
	for d := a.dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			return true
		}
		if d == filepath.Dir(d) {
			return false
		}
	}
}

func (a *agent) root() bool { return os.Geteuid() == 0 }

// sayIsolation tells once, when local mode is not root, what that means
// for jobs.
func (a *agent) sayIsolation() {
	if a.root() && a.jobUIDsUnreachable() {
		a.log.Warn("agent: local mode runs as root, but "+a.dir+" (or a directory above it) is closed to other users, "+
			"so jobs run as root, as the runners do: they could read their runner and each other. "+
			"Put the configuration where other users may enter (chmod o+x on its directories) for a uid per job", "dir", a.dir)
		return
	}
	if a.root() {
		a.log.Info("agent: each job runs under a uid of its own", "first_uid", localJobUIDBase)
		return
	}
	a.log.Warn("agent: local mode is not running as root, so jobs run under your own uid: a job cannot read its runner " +
		"(the runner is non-dumpable) but could signal it or read a sibling job's environment; run local mode as root (as CI does) " +
		"for a uid per job")
}
