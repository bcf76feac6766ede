package iamcheck

import (
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

// Local mode has no IAM roles: its runners assume
// "arn:aws:iam::<account>:role/deploy-broker-local/<task family>" for their
// jobs (the emulator's STS issues a session for any ARN), and the job's
// calls come from sessions "assumed-role/<task family>/<run id>". Both stand
// for the stack's deployment role of the job whose task definition has that
// family.

// localDeploymentRole is the stack's deployment role that local mode's
// stand-in named roleName (a task definition family) stands for.
func (s *Stack) localDeploymentRole(roleName string) *Role {
	for k, v := range s.Resources {
		if job, ok := strings.CutPrefix(k, "task-definition:"); ok && strings.Contains(v, ":task-definition/"+roleName+":") {
			return s.Roles["job:"+job]
		}
	}
	return nil
}

// localDeploymentRoleARN maps a role ARN local mode's runners assume to the
// stack's deployment role; other ARNs are returned as they are.
func (s *Stack) localDeploymentRoleARN(arn string) (string, *Role) {
	i := strings.Index(arn, ":role"+localbroker.DeploymentRolePath)
	if i < 0 {
		return arn, nil
	}
	if r := s.localDeploymentRole(arn[i+len(":role"+localbroker.DeploymentRolePath):]); r != nil {
		return r.ARN, r
	}
	return arn, nil
}
