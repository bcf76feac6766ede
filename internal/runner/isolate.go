package runner

import (
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// EnvJobUID is the uid (and gid) the job runs under when the runner is root
// (runner-only; default DefaultJobUID, the image's job user). Local mode
// gives each run its own.
const EnvJobUID = "DEPLOY_BROKER_JOB_UID"

// DefaultJobUID is the image's job user (Dockerfile).
const DefaultJobUID = 10002

// JobUIDSame as EnvJobUID runs the job under the runner's own uid even when
// that is root: local mode's choice when the job's uid could not reach the
// configuration's directory (it says so).
const JobUIDSame = "same"

// runnerOnlyEnv are variables of the runner's environment that never reach
// the job: the task role's credentials (the container credentials URI ECS
// sets, static keys, web identity) and the endpoint's own variables, which
// the runner sets anew. Every DEPLOY_BROKER_* variable not in
// protocol.JobVisibleEnv (nor a secret parameter) is dropped too. A job's
// own AWS_PROFILE or AWS_CONFIG_FILE (from the catalogue's environment: a
// profile with credential_source = EcsContainer, say) stays.
var runnerOnlyEnv = map[string]bool{
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": true,
	envCredsFullURI:                          true,
	envCredsToken:                            true,
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": true,
	"AWS_ACCESS_KEY_ID":                      true,
	"AWS_SECRET_ACCESS_KEY":                  true,
	"AWS_SESSION_TOKEN":                      true,
	"AWS_SECURITY_TOKEN":                     true,
	"AWS_WEB_IDENTITY_TOKEN_FILE":            true,
	"AWS_ROLE_ARN":                           true,
	"AWS_ROLE_SESSION_NAME":                  true,
}

// jobEnvironment is the job's environment: environ without what is the
// runner's alone, plus extra (the credentials endpoint).
func jobEnvironment(environ []string, extra ...string) []string {
	visible := map[string]bool{}
	for _, n := range protocol.JobVisibleEnv {
		visible[n] = true
	}
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if runnerOnlyEnv[name] {
			continue
		}
		if strings.HasPrefix(name, "DEPLOY_BROKER_") && !visible[name] && !strings.HasPrefix(name, protocol.EnvParamPrefix) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}
