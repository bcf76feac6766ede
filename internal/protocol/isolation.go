package protocol

// Run isolation (issue 22): the runner holds the task role alone and
// assumes the job's deployment role for the job.
const (
	// EnvJobRoleARN is the deployment role the runner assumes for the job
	// (set by the stack in the task definition's environment; local mode
	// sets it too). Unset: the job gets no AWS credentials from the runner.
	EnvJobRoleARN = "DEPLOY_BROKER_JOB_ROLE_ARN"
	// EnvRequester is the run's verified requester (the principal's ARN, as
	// in the TagRequester task tag). The runner puts it in the deployment
	// role session's TagRequester session tag. Optional.
	EnvRequester = "DEPLOY_BROKER_REQUESTER"
)

// JobVisibleEnv are the broker's variables a job sees: every other
// DEPLOY_BROKER_* variable (queue URL, redaction settings, role ARN…) is
// the runner's alone. Variables starting with EnvParamPrefix (secret
// parameters) are the job's too.
var JobVisibleEnv = []string{EnvRunID, EnvJob, EnvDeadline, EnvOutput}
