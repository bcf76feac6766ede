package broker

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// JobSecret is one environment variable ECS fills from Secrets Manager or
// SSM Parameter Store.
type JobSecret struct {
	Name, ValueFrom string
}

// JobProps configures one catalogue job.
type JobProps struct {
	Name   string
	Job    config.Job
	Family string
	// Secrets are the job's secrets, sorted by name; the execution role's
	// read permission on them is the catalogue's.
	Secrets       []JobSecret
	ExecutionRole awsiam.IRole
	LogGroup      awslogs.ILogGroup
	// RunQueueArn is where the runner may send feedback.
	RunQueueArn *string
	// LedgerArn is the run ledger's table: no job may touch it.
	LedgerArn *string
	// BrokerFamilies is the ARN pattern of the broker's task definition
	// families: no job may register a revision in one, nor run or start one.
	BrokerFamilies *string
	// BrokerRoles is the ARN pattern of the broker's roles (by their IAM
	// path, config.RolePath): no job may pass one.
	BrokerRoles *string
	// Broker is the broker's name; ClusterName its cluster's.
	Broker, ClusterName string
	// RolePath is the IAM path of the job's task role.
	RolePath string
	// SqsAbacUnavailable is true in the regions without SQS ABAC,
	// SqsAbacAvailable elsewhere.
	SqsAbacUnavailable, SqsAbacAvailable awscdk.CfnCondition
	// StopTimeout is ECS's SIGTERM → SIGKILL time: the runner's grace and a
	// margin.
	StopTimeout awscdk.Duration
}

// Job is a catalogue job's task role and Fargate task definition.
type Job interface {
	constructs.Construct
	Name() string
	Family() string
	TaskRole() awsiam.IRole
	// DeploymentRole holds the job's permissions; the runner assumes it
	// for the job (deployrole.go).
	DeploymentRole() awsiam.IRole
	TaskDefinition() awsecs.FargateTaskDefinition
	// Warm is the job's warm runners (catalogue warm: N).
	Warm() int
}

type job struct {
	constructs.Construct
	warm         int
	name, family string
	role         awsiam.Role
	deployment   awsiam.Role
	taskDef      awsecs.FargateTaskDefinition
}

// TmpVolume is the task's writable scratch volume, mounted at /tmp: the
// root filesystem is read-only.
const TmpVolume = "tmp"

// NewJob creates the job's task role, the runner's (sending to the run
// queues of this job, assuming the job's deployment role), the deployment
// role (exactly the statements and managed policies of the job's
// configuration, deployrole.go) and its task definition: family "<broker>-<job>", one container "runner"
// with the job's image (whose entrypoint is the runner), ECS's init process,
// static environment, ECS secrets, awslogs, read-only root filesystem and a
// /tmp volume. The command comes
// with each RunTask.
func NewJob(scope constructs.Construct, id string, props *JobProps) Job {
	this := constructs.NewConstruct(scope, &id)
	j := props.Job

	inline := map[string]awsiam.PolicyDocument{
		"run-queues": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
			// Only queues of this job's runs: the dispatcher creates every
			// run queue tagged with its job (SQS ABAC; the tag is set in the
			// CreateQueue call itself and every job role is denied untagging
			// or retagging a run queue). Without the condition, any job could
			// write into the feedback of any other job's run. StringEquals,
			// not StringEqualsIfExists: a queue without the tag (made by
			// anyone else under the run-queue name pattern) matches no job.
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("SendFeedbackToOwnRunQueues"),
				Actions:   jsii.Strings("sqs:SendMessage"),
				Resources: &[]*string{props.RunQueueArn},
				Conditions: &map[string]interface{}{
					"StringEquals": map[string]interface{}{"aws:ResourceTag/" + protocol.TagJob: props.Name},
				},
			}),
		}}),
		"broker-guard": jobGuard(props, false),
	}
	if j.Warm > 0 {
		// A warm runner takes its one assignment from its inbox: only the
		// inboxes of this job's warm runners (the dispatcher tags each
		// with its job at CreateQueue, as run queues).
		inline["warm-inbox"] = awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("TakeAssignmentFromOwnInbox"),
				Actions:   jsii.Strings("sqs:ReceiveMessage", "sqs:DeleteMessage"),
				Resources: &[]*string{inboxArn(props.Broker)},
				Conditions: &map[string]interface{}{
					"StringEquals": map[string]interface{}{"aws:ResourceTag/" + protocol.TagJob: props.Name},
				},
			}),
		}})
	}
	// The task role is the runner's (issue 22): run feedback, and assuming
	// the job's deployment role, which holds the job's permissions.
	role := awsiam.NewRole(this, jsii.String("TaskRole"), &awsiam.RoleProps{
		AssumedBy:      ecsTasksPrincipal(),
		Path:           jsii.String(props.RolePath),
		Description:    jsii.String(fmt.Sprintf("deploy-broker job %s runner: run feedback, assumes the job's deployment role", props.Name)),
		InlinePolicies: &inline,
	})
	deployment := newDeploymentRole(this, props, role)
	if props.SqsAbacUnavailable != nil {
		// Where SQS has no ABAC the tag key is absent from the request and
		// StringEquals never matches: only there, and only by this
		// CloudFormation condition, the job may send to the broker's run
		// queues by name pattern (any run of any job of this broker).
		noAbac := []awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("SendFeedbackToRunQueuesWithoutAbac"),
			Actions:   jsii.Strings("sqs:SendMessage"),
			Resources: &[]*string{props.RunQueueArn},
		})}
		if j.Warm > 0 {
			// Likewise any inbox of this broker, there only.
			noAbac = append(noAbac, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("TakeAssignmentWithoutAbac"),
				Actions:   jsii.Strings("sqs:ReceiveMessage", "sqs:DeleteMessage"),
				Resources: &[]*string{inboxArn(props.Broker)},
			}))
		}
		fallback := awsiam.NewPolicy(this, jsii.String("RunQueuesWithoutAbac"), &awsiam.PolicyProps{
			Roles:      &[]awsiam.IRole{role},
			Statements: &noAbac,
		})
		fallback.Node().DefaultChild().(awsiam.CfnPolicy).CfnOptions().SetCondition(props.SqsAbacUnavailable)
		if j.Warm > 0 {
			suppress(fallback, "AwsSolutions-IAM5", "Only in the regions without SQS ABAC (CloudFormation condition SqsAbacUnavailable): a warm runner takes its assignment from an inbox named after its slot id (made by the dispatcher); each inbox's policy still denies every principal outside the broker's roles",
				"Resource::"+nagArn("sqs", protocol.InboxNamePattern(props.Broker)))
		}
	}
	if props.SqsAbacAvailable != nil {
		// Where SQS has ABAC, whatever else the job holds (a managed policy
		// the catalogue validator cannot read, such as one granting
		// sqs:SendMessage on "*"), it never sends to a run queue that is
		// not tagged with its own job. Not in the other regions: there the
		// tag key is always absent and this would deny every send.
		guard := awsiam.NewPolicy(this, jsii.String("OnlyOwnRunQueuesWithAbac"), &awsiam.PolicyProps{
			Roles: &[]awsiam.IRole{role},
			Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("NeverSendToOtherJobsRunQueues"),
				Effect:    awsiam.Effect_DENY,
				Actions:   jsii.Strings("sqs:SendMessage"),
				Resources: &[]*string{props.RunQueueArn},
				Conditions: &map[string]interface{}{
					"StringNotEquals": map[string]interface{}{"aws:ResourceTag/" + protocol.TagJob: props.Name},
				},
			})},
		})
		guard.Node().DefaultChild().(awsiam.CfnPolicy).CfnOptions().SetCondition(props.SqsAbacAvailable)
	}

	taskDef := awsecs.NewFargateTaskDefinition(this, jsii.String("TaskDefinition"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String(props.Family),
		Cpu:            jsii.Number(float64(j.CPU)),
		MemoryLimitMiB: jsii.Number(float64(j.Memory)),
		TaskRole:       role,
		ExecutionRole:  props.ExecutionRole,
		Volumes:        &[]*awsecs.Volume{{Name: jsii.String(TmpVolume)}},
	})
	env := map[string]*string{}
	for k, v := range j.Environment {
		env[k] = jsii.String(v)
	}
	// The runner's stdout is the run log that deploy-trigger logs and
	// attach read (protocol/runlog.go).
	env[protocol.EnvLogFormat] = jsii.String(protocol.LogFormatRecords)
	// The role the runner assumes for the job and serves it on the job's
	// credentials endpoint (docs/RUNNER.md, "The job's identity").
	env[protocol.EnvJobRoleARN] = deployment.RoleArn()
	linux := awsecs.NewLinuxParameters(this, jsii.String("LinuxParameters"), &awsecs.LinuxParametersProps{
		InitProcessEnabled: jsii.Bool(true),
	})
	// The runner runs as root only to start the job under another uid
	// (runner.DefaultJobUID): of Docker's default capabilities it keeps
	// SETUID and SETGID (to switch), KILL (to stop the job's process
	// group) and CHOWN (to give the job its outputs file); Fargate drops
	// the rest here. The job's uid has no capabilities at all.
	linux.DropCapabilities(RunnerDroppedCapabilities...)
	container := taskDef.AddContainer(jsii.String("Runner"), &awsecs.ContainerDefinitionOptions{
		ContainerName:          jsii.String(config.ContainerName),
		Image:                  awsecs.ContainerImage_FromRegistry(jsii.String(j.Image), nil),
		Essential:              jsii.Bool(true),
		ReadonlyRootFilesystem: jsii.Bool(true),
		Environment:            &env,
		StopTimeout:            props.StopTimeout,
		// Root, whatever the image's USER: see linux above.
		User: jsii.String("0:0"),
		// The runner is not an init: with ECS's init process (tini) as
		// PID 1, orphaned descendants of the job are reaped, and signals
		// still reach the runner.
		LinuxParameters: linux,
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			LogGroup:     props.LogGroup,
			StreamPrefix: jsii.String(props.Name),
		}),
	})
	if _, ok := naming.ParseECRImage(j.Image); ok {
		// The catalogue grants the execution role the pull on this repository.
		awscdk.Annotations_Of(container).AcknowledgeWarning(jsii.String("@aws-cdk/aws-ecs:ecrImageRequiresPolicy"),
			jsii.String("the execution role may pull from the jobs' ECR repositories (JobCatalogue)"))
	}
	container.AddMountPoints(&awsecs.MountPoint{ContainerPath: jsii.String("/tmp"), SourceVolume: jsii.String(TmpVolume), ReadOnly: jsii.Bool(false)})
	if len(props.Secrets) > 0 {
		// The L2 Secret types would grant DescribeSecret too and rebuild the
		// ARNs; the reference goes to ECS exactly as configured and the
		// execution role reads exactly those (see JobCatalogue).
		var secrets []map[string]string
		for _, s := range props.Secrets {
			secrets = append(secrets, map[string]string{"Name": s.Name, "ValueFrom": s.ValueFrom})
		}
		cfn := taskDef.Node().DefaultChild().(awsecs.CfnTaskDefinition)
		cfn.AddPropertyOverride(jsii.String("ContainerDefinitions.0.Secrets"), secrets)
	}
	return &job{Construct: this, warm: j.Warm, name: props.Name, family: props.Family, role: role, deployment: deployment, taskDef: taskDef}
}

// RunnerDroppedCapabilities are Docker's default capabilities the runner
// container does without (it keeps CHOWN, KILL, SETGID and SETUID).
var RunnerDroppedCapabilities = []awsecs.Capability{
	awsecs.Capability_AUDIT_WRITE, awsecs.Capability_DAC_OVERRIDE, awsecs.Capability_FOWNER, awsecs.Capability_FSETID,
	awsecs.Capability_MKNOD, awsecs.Capability_NET_BIND_SERVICE, awsecs.Capability_NET_RAW, awsecs.Capability_SETFCAP,
	awsecs.Capability_SETPCAP, awsecs.Capability_SYS_CHROOT,
}

func (j *job) Name() string                                 { return j.name }
func (j *job) Family() string                               { return j.family }
func (j *job) TaskRole() awsiam.IRole                       { return j.role }
func (j *job) DeploymentRole() awsiam.IRole                 { return j.deployment }
func (j *job) TaskDefinition() awsecs.FargateTaskDefinition { return j.taskDef }
func (j *job) Warm() int                                    { return j.warm }

// SqsAbacUnavailableRegions are the regions where SQS has no
// attribute-based access control (see docs/INFRA.md).
var SqsAbacUnavailableRegions = []string{"ap-south-2", "ap-southeast-4", "eu-central-2", "eu-south-2"}

// jobStatement is a statement of the job's configured policy, as written.
func jobStatement(s config.Statement) awsiam.PolicyStatement {
	effect := awsiam.Effect_ALLOW
	if s.Effect == "Deny" {
		effect = awsiam.Effect_DENY
	}
	props := &awsiam.PolicyStatementProps{
		Effect:    effect,
		Actions:   jsii.Strings(s.Actions...),
		Resources: jsii.Strings(s.Resources...),
	}
	if s.Sid != "" {
		props.Sid = jsii.String(s.Sid)
	}
	if len(s.Condition) > 0 {
		cond := map[string]interface{}{}
		for op, kv := range s.Condition {
			cond[op] = kv
		}
		props.Conditions = &cond
	}
	return awsiam.NewPolicyStatement(props)
}
