package broker

import (
	"fmt"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"
)

// nagArn is how cdk-nag prints an ARN built by arn(): pseudo parameters as
// <AWS::...>. Suppressions name findings exactly, never by pattern.
func nagArn(service, resource string) string {
	return "arn:<AWS::Partition>:" + service + ":<AWS::Region>:<AWS::AccountId>:" + resource
}

// suppress records why a cdk-nag finding on one resource is accepted.
// appliesTo names the exact findings ("Resource::…", "Action::…") of
// granular rules.
func suppress(c constructs.IConstruct, id, reason string, appliesTo ...string) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		list := make([]interface{}, len(appliesTo))
		for i, a := range appliesTo {
			list[i] = a
		}
		s.AppliesTo = &list
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(false))
}

// addNagSuppressions accepts, one by one and each with its reason, the
// AwsSolutions findings that least privilege cannot avoid. Everything else
// must pass the pack.
func (s *Stack) addNagSuppressions(cfg *config.Config) {
	const iam5 = "AwsSolutions-IAM5"
	name := cfg.Broker.Name

	d := s.Dispatcher.Role()
	suppress(d, iam5, "sqs:ListQueues (the sweep lists run queues by name prefix) has no resource-level permissions, and ecs:ListTasks is authorized on container instances, which Fargate tasks have none of; ListTasks is scoped by the ecs:cluster condition to the broker cluster",
		"Resource::*")
	suppress(d, iam5, "Task ids are chosen by ECS: StopTask may act on any task of the broker cluster only (ecs:cluster condition), TagResource only at RunTask (ecs:CreateAction condition)",
		"Resource::"+nagArn("ecs", "task/"+name+"/*"))
	if s.TriggerRole != nil {
		suppress(s.TriggerRole.Role(), iam5, "SNS asks KMS for GenerateDataKey and GenerateDataKeyWithoutPlaintext on the publisher's behalf; allowed only via SNS (kms:ViaService) for the broker topic (kms:EncryptionContext:aws:sns:topicArn) on the topic key",
			"Action::kms:GenerateDataKey*")
	}

	suppress(s.View.WriterRole(), iam5, "CloudWatch Logs names a log stream by the Lambda instance: the view writer writes streams of its own log group only",
		"Resource::"+nagArn("logs", "log-group:"+ViewWriterLogGroupName(name)+":*"))

	ecr := false
	for _, jobName := range cfg.JobNames() {
		if _, ok := naming.ParseECRImage(cfg.Jobs[jobName].Image); ok {
			ecr = true
		}
	}
	if ecr {
		suppress(s.Catalogue.ExecutionRole(), iam5, "ecr:GetAuthorizationToken has no resource-level permissions; image layers are pulled only from the jobs' own repositories",
			"Resource::*")
	}

	inboxes := "Resource::" + nagArn("sqs", protocol.InboxNamePattern(name))
	warm := false
	for _, j := range s.Catalogue.Jobs() {
		if j.Warm() > 0 {
			warm = true
			suppress(j.TaskRole(), iam5, "A warm runner's inbox is named after its slot id, made by the dispatcher when it starts the runner: the runner may only receive and delete messages, and only on inboxes tagged with its own job (aws:ResourceTag condition); each inbox's policy denies every principal outside the broker's roles",
				inboxes)
		}
	}
	if warm {
		suppress(d, iam5, "Warm runners' inboxes are named after slot ids the dispatcher makes when it starts a runner (<broker>-warm-<ULID>, a pattern no run queue matches); the dispatcher creates, writes to and deletes them, and each inbox's policy lets no one else write",
			inboxes)
	}

	for _, j := range s.Catalogue.Jobs() {
		job := cfg.Jobs[j.Name()]
		var wild []string
		for _, st := range job.Policy {
			for _, a := range st.Actions {
				if strings.Contains(a, "*") {
					wild = append(wild, "Action::"+a)
				}
			}
			for _, r := range st.Resources {
				if strings.Contains(r, "*") {
					wild = append(wild, "Resource::"+r)
				}
			}
		}
		if len(wild) > 0 {
			suppress(j.DeploymentRole(), iam5, fmt.Sprintf("The deployment permissions of job %q, verbatim from jobs.%s.policy in the broker configuration that the platform team reviews; the broker adds nothing but its Denies", j.Name(), j.Name()),
				unique(wild)...)
		}
		var awsManaged []string
		for _, arn := range job.ManagedPolicies {
			if strings.Contains(arn, ":iam::aws:policy/") {
				awsManaged = append(awsManaged, "Policy::"+arn)
			}
		}
		if len(awsManaged) > 0 {
			suppress(j.DeploymentRole(), "AwsSolutions-IAM4", fmt.Sprintf("AWS managed policies named by jobs.%s.managed_policies in the broker configuration: the job's declared deployment permissions", j.Name()),
				awsManaged...)
		}
		// Every task definition sets DEPLOY_BROKER_LOG_FORMAT (job.go).
		suppress(j.TaskDefinition(), "AwsSolutions-ECS2", fmt.Sprintf("Static, non-secret settings: DEPLOY_BROKER_LOG_FORMAT=records (the runner writes the run log) and jobs.%s.environment from the broker configuration; secret values reach the job only as ECS secrets (jobs.%s.secrets)", j.Name(), j.Name()))
	}
}
