package localbroker

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// approverSession is the session name of local mode's approver identity.
const approverSession = "local-approver"

// ApproverRole is the role local mode's approver identity is a session of:
// the first role named by a job's approvers (arn:…:iam::…:role/NAME, or the
// role of an arn:…:sts::…:assumed-role/NAME/… pattern). "" when no job has
// approvers.
func (b *Broker) ApproverRole() string {
	for _, name := range b.Config.JobNames() {
		for _, p := range b.Config.Jobs[name].Approvers {
			parts := strings.SplitN(p, ":", 6)
			switch {
			case len(parts) != 6:
			case parts[2] == "iam" && strings.HasPrefix(parts[5], "role/"):
				return p
			case parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/"):
				role, _, _ := strings.Cut(strings.TrimPrefix(parts[5], "assumed-role/"), "/")
				return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + role
			}
		}
	}
	return ""
}

// EnvAs is Env with the credentials of a session of roleARN made in the
// emulator: a second person for approvals (deploy-trigger approve RUN_ID).
func (b *Broker) EnvAs(ctx context.Context, roleARN, session string) ([]string, string, error) {
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		return nil, "", err
	}
	out, err := sts.NewFromConfig(awsCfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String(session), DurationSeconds: aws.Int32(12 * 3600)})
	if err != nil {
		return nil, "", fmt.Errorf("assuming %s in the emulator: %w", roleARN, err)
	}
	if b.rec != nil {
		b.rec.Name(aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.AssumedRoleUser.Arn))
	}
	b.Trust(aws.Credentials{AccessKeyID: aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey), SessionToken: aws.ToString(out.Credentials.SessionToken)})
	env := b.Env()
	for i, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "AWS_ACCESS_KEY_ID":
			env[i] = k + "=" + aws.ToString(out.Credentials.AccessKeyId)
		case "AWS_SECRET_ACCESS_KEY":
			env[i] = k + "=" + aws.ToString(out.Credentials.SecretAccessKey)
		case "AWS_SESSION_TOKEN":
			env[i] = k + "=" + aws.ToString(out.Credentials.SessionToken)
		}
	}
	return env, aws.ToString(out.AssumedRoleUser.Arn), nil
}

// writeApproverEnv writes approver.env beside the env file when a job has
// approvers; it returns the file and the approver's ARN ("" when none).
// Like the env file it names the environments file (--env local) and sets
// no empty variable (an empty AWS_PROFILE breaks
// the AWS CLI for whoever sources it).
func (b *Broker) writeApproverEnv(ctx context.Context, envFile string) (string, string, error) {
	role := b.ApproverRole()
	if role == "" {
		return "", "", nil
	}
	env, arn, err := b.EnvAs(ctx, role, approverSession)
	if err != nil {
		return "", "", err
	}
	// --env local works for the approver as for the requester (the
	// environments file beside it, environments.go).
	envs, err := b.writeEnvironmentsFile(filepath.Dir(envFile))
	if err != nil {
		return "", "", err
	}
	path, err := writeApproverFile(envFile, arn, append(env, "DEPLOY_TRIGGER_ENVIRONMENTS="+envs))
	return path, arn, err
}

// writeApproverFile writes approver.env for arn's env beside envFile,
// private (private.go).
func writeApproverFile(envFile, arn string, env []string) (string, error) {
	sort.Strings(env)
	var sb strings.Builder
	fmt.Fprintf(&sb, "# deploy-broker local mode: a second person for approvals (deploy-trigger approve RUN_ID).\n# The credentials are those of %s, a session made in the emulator.\n", arn)
	writeEnvLines(&sb, env)
	path := filepath.Join(filepath.Dir(envFile), "approver.env")
	return path, writePrivate(path, []byte(sb.String()))
}
