package protocol

// Environment variables the dispatcher sets on the runner container (through
// RunTask's container overrides). They are the runner's whole contract with
// the broker: the job's command itself comes as the container's command.
const (
	EnvRunID     = "DEPLOY_BROKER_RUN_ID"
	EnvQueueURL  = "DEPLOY_BROKER_QUEUE_URL"
	EnvJob       = "DEPLOY_BROKER_JOB"
	EnvDeadline  = "DEPLOY_BROKER_DEADLINE"  // RFC 3339: kill the job at this time (reason timeout)
	EnvRedact    = "DEPLOY_BROKER_REDACT"    // comma-separated names of variables whose values are secret
	EnvHeartbeat = "DEPLOY_BROKER_HEARTBEAT" // Go duration between heartbeats
	EnvGrace     = "DEPLOY_BROKER_GRACE"     // Go duration between SIGTERM and SIGKILL

	// EnvParamPrefix + the upper-cased name of a parameter declared secret
	// holds that parameter's value, and is named in EnvRedact, so that the
	// runner masks the value in everything it sends to the queue.
	EnvParamPrefix = "DEPLOY_BROKER_PARAM_"
)

// Environment variables of the dispatcher Lambda, set by the CDK stack
// (infra) and read by the dispatcher's SettingsFromEnv.
const (
	EnvConfig          = "DEPLOY_BROKER_CONFIG"
	EnvCluster         = "DEPLOY_BROKER_CLUSTER"
	EnvLedgerTable     = "DEPLOY_BROKER_LEDGER_TABLE"
	EnvSubnets         = "DEPLOY_BROKER_SUBNETS"
	EnvSecurityGroups  = "DEPLOY_BROKER_SECURITY_GROUPS"
	EnvAssignPublicIP  = "DEPLOY_BROKER_ASSIGN_PUBLIC_IP"
	EnvExtraPrincipals = "DEPLOY_BROKER_EXTRA_PRINCIPALS"
	EnvAccountID       = "DEPLOY_BROKER_ACCOUNT_ID"
	// EnvTaskRevisions pins each job to the task definition revision the
	// stack created for it: "<job>=<revision>,…". The dispatcher runs
	// "<broker>-<job>:<revision>" and refuses to launch a job without one.
	EnvTaskRevisions = "DEPLOY_BROKER_TASK_REVISIONS"
	// EnvSTSEndpoint replaces the STS endpoint allowlist that proofs of
	// identity are verified against with this one URL: local mode (moto)
	// and tests. Unset in AWS: the regional endpoint of the dispatcher's own
	// partition and region is the only one accepted.
	EnvSTSEndpoint = "DEPLOY_BROKER_STS_ENDPOINT"
	// EnvDispatcherRole is the dispatcher role's ARN (with its path): the
	// only principal a warm runner's inbox lets write to it.
	EnvDispatcherRole = "DEPLOY_BROKER_DISPATCHER_ROLE_ARN"
)

// QueueName is the name of a run's feedback queue: "<prefix>-<run id>.fifo".
func QueueName(prefix, runID string) string { return prefix + "-" + runID + ".fifo" }

// MaxQueuePrefixLength keeps QueueName within SQS's 80 characters.
const MaxQueuePrefixLength = 80 - len(".fifo") - 1 - RunIDLength
