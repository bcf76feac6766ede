package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"

	dispatchenv "github.com/deploy-broker/deploy-broker/internal/dispatcher"
)

// The trust table of docs/ARCHITECTURE.md, row by row, statement by statement.

var testCIPrincipals = []string{"111111111111", "222222222222"}

func isCIPrincipal(p string) bool {
	for _, id := range testCIPrincipals {
		if strings.Contains(p, id) {
			return true
		}
	}
	return false
}

func runQueueArn(broker string) string { return stackArn("sqs", naming.RunQueuePattern(broker)) }

// Row 1: CI principals may sns:Publish, and use the key only through SNS
// for this topic; nothing else in the stack names them.
func TestCIPrincipalsMayOnlyPublishAndUseTheKeyThroughSNS(t *testing.T) {
	// GIVEN the stack of a configuration trusting a role and an account
	f := mainStack(t)
	topicID := logicalID(f, f.app.Stack.Topic.Topic())
	topicArn := stackArn("sns", "test-broker")

	// WHEN we collect every statement of every policy that names them
	var got []statement
	for _, s := range allStatements(f) {
		for _, p := range s.Principals {
			if isCIPrincipal(p) {
				got = append(got, s)
				break
			}
		}
	}

	// THEN there are exactly two: publish on the topic, the key via SNS
	assertGrants(t, "the CI principals", got, []grant{
		{Sid: "TrustedPrincipalsPublish", Actions: []string{"sns:Publish"}, Resources: []string{ref(topicID)}},
		{Sid: "PublishersUseKeyThroughSnsForTopicOnly", Actions: []string{"kms:GenerateDataKey*", "kms:Decrypt"}, Resources: []string{"*"},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{
				"kms:ViaService":                         "sns." + region + ".amazonaws.com",
				"kms:EncryptionContext:aws:sns:topicArn": topicArn,
			}}},
	})
	for _, s := range got {
		if s.ResourceType == "AWS::SNS::TopicPolicy" || s.ResourceType == "AWS::KMS::Key" {
			if strings.Join(s.Principals, ",") != "AWS:arn:aws:iam::111111111111:role/jenkins-deployer,AWS:arn:"+partition+":iam::222222222222:root" {
				t.Errorf("%s names principals %v, want exactly the configured role and account", s.ResourceType, s.Principals)
			}
		}
	}
	// The topic the key's condition names is the stack's topic.
	if name := f.resources()[topicID].(map[string]interface{})["Properties"].(map[string]interface{})["TopicName"]; name != "test-broker" {
		t.Errorf("topic name %v, want test-broker (the key policy's encryption context names it)", name)
	}

	// AND the template says so in CDK's own matchers
	has(t, f.template, "AWS::SNS::TopicPolicy", like(obj{
		"PolicyDocument": like(obj{"Statement": arrayWith(like(obj{
			"Sid": "TrustedPrincipalsPublish", "Effect": "Allow", "Action": "sns:Publish",
			"Principal": obj{"AWS": arrayWith("arn:aws:iam::111111111111:role/jenkins-deployer")},
		}))}),
	}))
	has(t, f.template, "AWS::KMS::Key", like(obj{
		"EnableKeyRotation": true,
		"KeyPolicy": like(obj{"Statement": arrayWith(like(obj{
			"Effect": "Allow", "Action": arr{"kms:GenerateDataKey*", "kms:Decrypt"},
			"Condition": obj{"StringEquals": like(obj{"kms:ViaService": like(obj{})})},
		}))}),
	}))
	has(t, f.template, "AWS::SNS::Topic", like(obj{"KmsMasterKeyId": like(obj{})}))
}

// Row 2 (stack side): run queues are readable by the CI principals through
// each queue's policy, which the dispatcher writes; it is told the extra
// principal (the GitHub role) and may write queue policies only on run
// queues.
func TestRunQueuePoliciesAreTheDispatchersOnRunQueuesOnly(t *testing.T) {
	// GIVEN the stack with a GitHub trigger role
	f := mainStack(t)
	role := logicalID(f, f.app.Stack.TriggerRole.Role())
	// WHEN we look for who may set queue attributes (the queue policy)
	var setters []statement
	for _, s := range allStatements(f) {
		for _, a := range s.Actions {
			if a == "sqs:SetQueueAttributes" || a == "sqs:AddPermission" {
				setters = append(setters, s)
			}
		}
	}
	// THEN only the dispatcher, on run queues
	if len(setters) != 1 || setters[0].Sid != "ManageRunQueues" || strings.Join(setters[0].Resources, ",") != runQueueArn("test-broker") {
		t.Errorf("queue policies may be set by %v, want only the dispatcher's ManageRunQueues on %s", setters, runQueueArn("test-broker"))
	}
	// AND the dispatcher knows the extra reader
	has(t, f.template, "AWS::Lambda::Function", like(obj{"Environment": obj{"Variables": like(obj{
		dispatchenv.EnvExtraPrincipals: obj{"Fn::GetAtt": arr{role, "Arn"}},
	})}}))
}

// The GitHub OIDC trigger role: exact audience and subjects; publish,
// the key via SNS, read run queues; nothing else.
func TestGitHubTriggerRoleMayPublishAndReadRunQueuesOnly(t *testing.T) {
	// GIVEN the stack of a configuration with github_oidc and no provider
	f := mainStack(t)
	role := logicalID(f, f.app.Stack.TriggerRole.Role())
	topic := logicalID(f, f.app.Stack.Topic.Topic())
	key := logicalID(f, f.app.Stack.Key.Key())

	// WHEN we read its trust and identity policies
	trust := trustStatements(f, role)
	perms := identityStatements(f, role)

	// THEN it trusts the created provider for exactly the configured subjects
	count(t, f.template, "AWS::IAM::OIDCProvider", 1)
	has(t, f.template, "AWS::IAM::OIDCProvider", like(obj{"Url": "https://token.actions.githubusercontent.com", "ClientIdList": arr{"sts.amazonaws.com"}}))
	if len(trust) != 1 || trust[0].Actions[0] != "sts:AssumeRoleWithWebIdentity" || !strings.HasPrefix(trust[0].Principals[0], "Federated:${") {
		t.Fatalf("trust policy %v, want one AssumeRoleWithWebIdentity from the provider", trust)
	}
	assertGrants(t, "the GitHub role's trust", trust, []grant{{
		Actions: []string{"sts:AssumeRoleWithWebIdentity"},
		Condition: map[string]interface{}{"StringEquals": map[string]interface{}{
			"token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
			"token.actions.githubusercontent.com:sub": []interface{}{"repo:example-org/app:ref:refs/heads/main", "repo:example-org/app:environment:production"},
		}},
	}})
	// AND it may do exactly this
	assertGrants(t, "the GitHub role", perms, []grant{
		{Sid: "PublishRunRequests", Actions: []string{"sns:Publish"}, Resources: []string{ref(topic)}},
		{Sid: "UseTopicKeyThroughSnsOnly", Actions: []string{"kms:GenerateDataKey*", "kms:Decrypt"}, Resources: []string{getAtt(key, "Arn")},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{
				"kms:ViaService": "sns." + region + ".amazonaws.com", "kms:EncryptionContext:aws:sns:topicArn": ref(topic),
			}}},
		{Sid: "ReadRunQueues", Actions: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
			Resources: []string{runQueueArn("test-broker")}},
	})
	// AND no managed policy, and sessions long enough for the longest job
	// (2h timeout + 10m request age + grace + margin → 3h)
	has(t, f.template, "AWS::IAM::Role", like(obj{
		"AssumeRolePolicyDocument": like(obj{"Statement": arrayWith(like(obj{"Action": "sts:AssumeRoleWithWebIdentity"}))}),
		"ManagedPolicyArns":        assertions.Match_Absent(),
		"MaxSessionDuration":       10800,
	}))
}

// Row 3: the dispatcher.
func TestDispatcherRunsOnlyCatalogueTasksAndPassesOnlyJobRoles(t *testing.T) {
	// GIVEN the stack of a two-job catalogue
	f := mainStack(t)
	s := f.app.Stack
	role := logicalID(f, s.Dispatcher.Role())
	cluster := getAtt(logicalID(f, s.Cluster), "Arn")
	var jobRoles []string
	for _, j := range s.Catalogue.Jobs() {
		jobRoles = append(jobRoles, getAtt(logicalID(f, j.TaskRole()), "Arn"))
	}
	exec := getAtt(logicalID(f, s.Catalogue.ExecutionRole()), "Arn")
	onCluster := map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": cluster}}
	taskDefs := []string{stackArn("ecs", "task-definition/test-broker-migrate:*"), stackArn("ecs", "task-definition/test-broker-website:*")}
	tasks := stackArn("ecs", "task/test-broker/*")

	// WHEN we read everything its role may do
	got := identityStatements(f, role)

	// THEN it is exactly the dispatcher row, statement by statement
	assertGrants(t, "the dispatcher", got, []grant{
		{Sid: "WriteOwnLogs", Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			Resources: []string{getAtt(logicalID(f, s.Dispatcher.LogGroup()), "Arn")}},
		{Sid: "RunLedger", Actions: []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
			Resources: []string{getAtt(logicalID(f, s.Ledger.Table()), "Arn")}},
		{Sid: "ManageRunQueues", Actions: []string{"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl",
			"sqs:SendMessage", "sqs:SetQueueAttributes", "sqs:TagQueue"}, Resources: []string{runQueueArn("test-broker")}},
		{Sid: "ListRunQueuesForSweep", Actions: []string{"sqs:ListQueues"}, Resources: []string{"*"}},
		{Sid: "RunCatalogueTasksOnThisCluster", Actions: []string{"ecs:RunTask"}, Resources: taskDefs, Condition: onCluster},
		{Sid: "NeverEnableExecuteCommand", Effect: "Deny", Actions: []string{"ecs:RunTask"}, Resources: taskDefs,
			Condition: map[string]interface{}{"StringEqualsIgnoreCase": map[string]interface{}{"ecs:enable-execute-command": "true"}}},
		{Sid: "TagTasksAtLaunch", Actions: []string{"ecs:TagResource"}, Resources: []string{tasks},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{"ecs:CreateAction": "RunTask"}}},
		{Sid: "StopTasksOnThisCluster", Actions: []string{"ecs:StopTask"}, Resources: []string{tasks}, Condition: onCluster},
		{Sid: "ListTasksOnThisCluster", Actions: []string{"ecs:ListTasks"}, Resources: []string{"*"}, Condition: onCluster},
		{Sid: "PassJobRolesToEcsTasks", Actions: []string{"iam:PassRole"}, Resources: append(jobRoles, exec),
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
		// CDK's grant for the function's dead-letter queue.
		{Actions: []string{"sqs:SendMessage"}, Resources: []string{getAtt(logicalID(f, s.Dispatcher.DeadLetterQueue()), "Arn")}},
	})
	// AND the task definitions it may run are exactly the catalogue's families
	for _, name := range f.app.Config.JobNames() {
		has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{"Family": f.app.Config.TaskFamily(name)}))
	}
	count(t, f.template, "AWS::ECS::TaskDefinition", len(f.app.Config.Jobs))
	// AND the RunTask statement reads as the design says
	has(t, f.template, "AWS::IAM::Role", like(obj{"Policies": arrayWith(like(obj{"PolicyDocument": like(obj{
		"Statement": arrayWith(like(obj{
			"Sid": "RunCatalogueTasksOnThisCluster", "Effect": "Allow", "Action": "ecs:RunTask",
			"Condition": obj{"ArnEquals": obj{"ecs:cluster": obj{"Fn::GetAtt": arr{logicalID(f, s.Cluster), "Arn"}}}},
		})),
	})}))}))
}

// Row 4: one task role per job, with its own statements and sending to the
// run queues of its own job (the queue's deploy-broker:job tag), nothing
// else.
func TestEachJobRoleHasOnlyItsOwnPermissions(t *testing.T) {
	// GIVEN the stack of a two-job catalogue
	f := mainStack(t)
	cfg := f.app.Config
	for _, j := range f.app.Stack.Catalogue.Jobs() {
		t.Run(j.Name(), func(t *testing.T) {
			role := logicalID(f, j.TaskRole())
			// WHEN we read everything the job's role may do
			got := identityStatements(f, role)
			// THEN it is sending to run queues tagged with this job, plus the
			// job's configured statements, as written
			want := []grant{{Sid: "SendFeedbackToOwnRunQueues", Actions: []string{"sqs:SendMessage"}, Resources: []string{runQueueArn("test-broker")},
				Condition: map[string]interface{}{"StringEqualsIfExists": map[string]interface{}{"aws:ResourceTag/deploy-broker:job": j.Name()}}}}
			for _, st := range cfg.Jobs[j.Name()].Policy {
				want = append(want, grant{Sid: st.Sid, Effect: st.Effect, Actions: st.Actions, Resources: st.Resources, Condition: conditionOf(st)})
			}
			assertGrants(t, "job "+j.Name(), got, want)
			// AND exactly its managed policies
			props := f.resources()[role].(map[string]interface{})["Properties"].(map[string]interface{})
			if got, want := strings.Join(list(props["ManagedPolicyArns"]), ","), strings.Join(cfg.Jobs[j.Name()].ManagedPolicies, ","); got != want {
				t.Errorf("managed policies %q, want %q", got, want)
			}
			// AND only ECS tasks of this account may assume it
			assertGrants(t, "job "+j.Name()+"'s trust", trustStatements(f, role), []grant{{
				Actions: []string{"sts:AssumeRole"},
				Condition: map[string]interface{}{
					"StringEquals": map[string]interface{}{"aws:SourceAccount": ref("AWS::AccountId")},
					"ArnLike":      map[string]interface{}{"aws:SourceArn": stackArn("ecs", "*")},
				},
			}})
			// AND it is the task role of the job's task definition only
			has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{
				"Family": cfg.TaskFamily(j.Name()), "TaskRoleArn": obj{"Fn::GetAtt": arr{role, "Arn"}},
			}))
		})
	}
}

// No job can write into another job's runs: every statement outside the
// dispatcher that allows sqs:SendMessage on run queues is a job role's, and
// names exactly that job's tag, the tag the dispatcher puts on the queues
// it creates.
func TestOnlyTheOwnJobSendsToARunQueue(t *testing.T) {
	for _, f := range []*fixture{mainStack(t), otherStack(t)} {
		roleOfJob := map[string]string{}
		for _, j := range f.app.Stack.Catalogue.Jobs() {
			roleOfJob[logicalID(f, j.TaskRole())] = j.Name()
		}
		dispatcher := logicalID(f, f.app.Stack.Dispatcher.Role())
		queues := runQueueArn(f.app.Config.Broker.Name)
		senders := map[string]bool{}
		for _, s := range allStatements(f) {
			if s.Effect == "Deny" || !slices.Contains(s.Resources, queues) || !slices.ContainsFunc(s.Actions, func(a string) bool {
				return a == "sqs:SendMessage" || a == "sqs:*" || a == "*"
			}) {
				continue
			}
			if s.LogicalID == dispatcher {
				continue
			}
			job, ok := roleOfJob[s.LogicalID]
			if !ok {
				t.Errorf("%s may send to run queues: only the dispatcher and job roles may", s.LogicalID)
				continue
			}
			want := render(map[string]interface{}{"StringEqualsIfExists": map[string]interface{}{"aws:ResourceTag/" + dispatchenv.TagJob: job}})
			if got := render(s.Condition); got != want {
				t.Errorf("job %s sends to run queues if %s, want if %s", job, got, want)
			}
			senders[job] = true
		}
		if len(senders) != len(roleOfJob) {
			t.Errorf("jobs that may send feedback: %v, want all of %v", senders, roleOfJob)
		}
	}
}

// conditionOf is a configured condition the way the template renders it.
func conditionOf(st config.Statement) map[string]interface{} {
	if len(st.Condition) == 0 {
		return nil
	}
	out := map[string]interface{}{}
	for op, kv := range st.Condition {
		m := map[string]interface{}{}
		for k, v := range kv {
			m[k] = v
		}
		out[op] = m
	}
	return out
}

// The shared execution role: pull the jobs' ECR images, read exactly the
// jobs' secrets, write the run log group.
func TestExecutionRoleReadsOnlyTheJobsImagesSecretsAndLogs(t *testing.T) {
	// GIVEN jobs with ECR images, a Secrets Manager JSON key and an SSM parameter
	f := mainStack(t)
	s := f.app.Stack
	role := logicalID(f, s.Catalogue.ExecutionRole())
	// WHEN we read everything it may do
	got := identityStatements(f, role)
	// THEN
	assertGrants(t, "the execution role", got, []grant{
		{Sid: "PullJobImages", Actions: []string{"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"},
			Resources: []string{"arn:aws:ecr:eu-west-1:123456789012:repository/deploy-runner", "arn:aws:ecr:eu-west-1:123456789012:repository/tools/migrate"}},
		{Sid: "EcrAuthorizationToken", Actions: []string{"ecr:GetAuthorizationToken"}, Resources: []string{"*"}},
		{Sid: "ReadJobSecrets", Actions: []string{"secretsmanager:GetSecretValue"},
			Resources: []string{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"}},
		{Sid: "ReadJobParameters", Actions: []string{"ssm:GetParameters"},
			Resources: []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/api-token"}},
		// CDK's grant for the awslogs driver.
		{Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Resources: []string{getAtt(logicalID(f, s.Catalogue.LogGroup()), "Arn")}},
	})
}

// Nothing in the stack can be assumed or used by anyone the table does not
// name: every trust policy is one of the known ones.
func TestOnlyKnownPrincipalsAssumeRoles(t *testing.T) {
	f := mainStack(t)
	for _, s := range allStatements(f) {
		if s.Doc != "trust" {
			continue
		}
		p := strings.Join(s.Principals, ",")
		switch p {
		case "Service:ecs-tasks.amazonaws.com", "Service:lambda.amazonaws.com", "Service:vpc-flow-logs.amazonaws.com":
		default:
			if !strings.HasPrefix(p, "Federated:") {
				t.Errorf("role %s is assumable by %s", s.LogicalID, p)
			}
		}
	}
}
