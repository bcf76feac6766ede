package broker

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"

	"github.com/deploy-broker/deploy-broker/infra/internal/naming"
	"github.com/deploy-broker/deploy-broker/internal/config"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
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

	// THEN there are exactly these: publish on the topic, the key via SNS,
	// and read the broker's published view (its one item: issue 25) and the
	// run pointers (run#<run id> → the run's queue: issue 26); they are not
	// viewers by default (issue 22), so no reader role trusts them
	assertGrants(t, "the CI principals", got, []grant{
		{Sid: viewReadersSid, Actions: []string{"dynamodb:GetItem"}, Resources: []string{stackArn("dynamodb", "table/test-broker-view")},
			Condition: map[string]interface{}{"ForAllValues:StringEquals": map[string]interface{}{"dynamodb:LeadingKeys": []interface{}{"public/v1"}}}},
		{Sid: pointerReadersSid, Actions: []string{"dynamodb:GetItem"}, Resources: []string{stackArn("dynamodb", "table/test-broker-view")},
			Condition: map[string]interface{}{"ForAllValues:StringLike": map[string]interface{}{"dynamodb:LeadingKeys": []interface{}{"run#*"}}}},
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

// Row 2 (stack side): a run queue is readable by its requester only,
// through the queue's policy, which the dispatcher writes when it creates
// the queue (dispatcher.QueuePolicy, unit-tested there: the verified
// requester's role, never the list of trusted principals); it is told the
// extra trusted principal (the GitHub role) and may write queue policies
// only on run queues.
func TestRunQueuePoliciesAreTheDispatchersOnRunQueuesOnly(t *testing.T) {
	// GIVEN the stack with a GitHub trigger role
	f := mainStack(t)
	role := logicalID(f, f.app.Stack.TriggerRole.Role())
	// WHEN we look for who may set a queue's policy: at creation
	// (CreateQueue with the Policy attribute) or after it
	// (SetQueueAttributes, AddPermission)
	var setters []statement
	for _, s := range allStatements(f) {
		if s.Effect == "Deny" {
			continue
		}
		for _, a := range s.Actions {
			switch a {
			case "sqs:SetQueueAttributes", "sqs:AddPermission":
				t.Errorf("a queue's policy may be changed after creation: %s", s)
			case "sqs:CreateQueue":
				setters = append(setters, s)
			}
		}
	}
	// THEN only the dispatcher, on run queues, when it creates them
	if len(setters) != 1 || setters[0].Sid != "ManageRunQueues" || strings.Join(setters[0].Resources, ",") != runQueueArn("test-broker") {
		t.Errorf("queue policies may be set by %v, want only the dispatcher's ManageRunQueues on %s", setters, runQueueArn("test-broker"))
	}
	// AND the dispatcher knows the extra reader
	has(t, f.template, "AWS::Lambda::Function", like(obj{"Environment": obj{"Variables": like(obj{
		protocol.EnvExtraPrincipals: obj{"Fn::GetAtt": arr{role, "Arn"}},
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
	common := []grant{
		{Sid: "PublishRunRequests", Actions: []string{"sns:Publish"}, Resources: []string{ref(topic)}},
		{Sid: "UseTopicKeyThroughSnsOnly", Actions: []string{"kms:GenerateDataKey*", "kms:Decrypt"}, Resources: []string{getAtt(key, "Arn")},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{
				"kms:ViaService": "sns." + region + ".amazonaws.com", "kms:EncryptionContext:aws:sns:topicArn": ref(topic),
			}}},
		// Issue 22: only the queues of its own runs (the requester tag the
		// dispatcher sets at creation)
		{Sid: "ReadOwnRunQueues", Actions: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
			Resources: []string{runQueueArn("test-broker")},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{"aws:ResourceTag/" + protocol.TagRequesterPrincipal: "${aws:PrincipalArn}"}}},
		{Sid: "FindRunQueues", Actions: []string{"sqs:GetQueueUrl"}, Resources: []string{runQueueArn("test-broker")}},
	}
	assertGrants(t, "the GitHub role in eu-west-1", inRegion(t, f, "eu-west-1", perms), common)
	// AND where SQS has no ABAC, every run queue by name, under the stack's
	// condition (the run queues' own policies deny it the others' runs)
	assertGrants(t, "the GitHub role in eu-central-2", inRegion(t, f, "eu-central-2", perms), append(slices.Clone(common),
		grant{Sid: "ReadRunQueuesWithoutAbac", Actions: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
			Resources: []string{runQueueArn("test-broker")}}))
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
	exec := getAtt(logicalID(f, s.Catalogue.ExecutionRole()), "Arn")
	onCluster := map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": cluster}}
	// Exactly the revision each task definition resource created (its Ref),
	// never "<family>:*".
	var taskDefs []string
	passRoles := map[string][]string{}
	for _, j := range s.Catalogue.Jobs() {
		taskDefs = append(taskDefs, ref(logicalID(f, j.TaskDefinition())))
		passRoles[j.Name()] = []string{getAtt(logicalID(f, j.TaskRole()), "Arn"), exec}
	}
	tasks := stackArn("ecs", "task/test-broker/*")
	toEcsTasks := map[string]interface{}{"StringEquals": map[string]interface{}{"iam:PassedToService": "ecs-tasks.amazonaws.com"}}

	// WHEN we read everything its role may do
	got := identityStatements(f, role)

	// THEN it is exactly the dispatcher row, statement by statement
	assertGrants(t, "the dispatcher", got, []grant{
		{Sid: "WriteOwnLogs", Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			Resources: []string{getAtt(logicalID(f, s.Dispatcher.LogGroup()), "Arn")}},
		// the job's outputs: the exit record at the end of a stopped run's log
		{Sid: "ReadRunLogsForOutputs", Actions: []string{"logs:GetLogEvents"},
			Resources: []string{getAtt(logicalID(f, s.Catalogue.LogGroup()), "Arn")}},
		{Sid: "RunLedger", Actions: []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
			Resources: []string{getAtt(logicalID(f, s.Ledger.Table()), "Arn")}},
		// Run pointers only (issue 26): never the view's own item.
		{Sid: "WriteRunPointers", Actions: []string{"dynamodb:PutItem"}, Resources: []string{getAtt(logicalID(f, s.View.Table()), "Arn")},
			Condition: map[string]interface{}{"ForAllValues:StringLike": map[string]interface{}{"dynamodb:LeadingKeys": []interface{}{"run#*"}}}},
		// No sqs:SetQueueAttributes: CreateQueue with its Policy attribute
		// is authorized as sqs:CreateQueue, its tags as sqs:TagQueue.
		{Sid: "ManageRunQueues", Actions: []string{"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueUrl",
			"sqs:SendMessage", "sqs:TagQueue"}, Resources: []string{runQueueArn("test-broker")}},
		{Sid: "ListRunQueuesForSweep", Actions: []string{"sqs:ListQueues"}, Resources: []string{"*"}},
		{Sid: "RunCatalogueTasksOnThisCluster", Actions: []string{"ecs:RunTask"}, Resources: taskDefs, Condition: onCluster},
		{Sid: "NeverEnableExecuteCommand", Effect: "Deny", Actions: []string{"ecs:RunTask"}, Resources: taskDefs,
			Condition: map[string]interface{}{"StringEqualsIgnoreCase": map[string]interface{}{"ecs:enable-execute-command": "true"}}},
		{Sid: "TagTasksAtLaunch", Actions: []string{"ecs:TagResource"}, Resources: []string{tasks},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{"ecs:CreateAction": "RunTask"}}},
		{Sid: "StopTasksOnThisCluster", Actions: []string{"ecs:StopTask"}, Resources: []string{tasks}, Condition: onCluster},
		{Sid: "ListTasksOnThisCluster", Actions: []string{"ecs:ListTasks"}, Resources: []string{"*"}, Condition: onCluster},
		// Lifecycle events: only the default bus, only the broker's source.
		{Sid: "PublishLifecycleEvents", Actions: []string{"events:PutEvents"}, Resources: []string{stackArn("events", "event-bus/default")},
			Condition: map[string]interface{}{
				"ForAllValues:StringEquals": map[string]interface{}{"events:source": protocol.EventSource},
				"Null":                      map[string]interface{}{"events:source": "false"}}},
		{Sid: "PassRolesOfJobMigrate", Actions: []string{"iam:PassRole"}, Resources: passRoles["migrate"], Condition: toEcsTasks},
		{Sid: "PassRolesOfJobWebsite", Actions: []string{"iam:PassRole"}, Resources: passRoles["website"], Condition: toEcsTasks},
		// CDK's grant for the function's dead-letter queue.
		{Actions: []string{"sqs:SendMessage"}, Resources: []string{getAtt(logicalID(f, s.Dispatcher.DeadLetterQueue()), "Arn")}},
	})
	// AND no statement of any role names a task definition by family
	for _, st := range allStatements(f) {
		for _, r := range st.Resources {
			if strings.Contains(r, ":task-definition/") && !strings.Contains(r, ":task-definition/test-broker-*") {
				t.Errorf("%s names task definitions by pattern %q", st, r)
			}
		}
	}
	// AND the task definitions it may run are exactly the catalogue's families
	for _, name := range f.app.Config.JobNames() {
		has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{"Family": f.app.Config.TaskFamily(name)}))
	}
	count(t, f.template, "AWS::ECS::TaskDefinition", len(f.app.Config.Jobs))
	// AND the dispatcher learns each job's revision from the same Ref
	env := f.resources()[logicalID(f, s.Dispatcher.Function())].(map[string]interface{})["Properties"].(map[string]interface{})["Environment"].(map[string]interface{})["Variables"].(map[string]interface{})
	var revs []string
	for _, j := range s.Catalogue.Jobs() {
		revs = append(revs, j.Name()+"="+render(map[string]interface{}{"Fn::Select": []interface{}{6, map[string]interface{}{"Fn::Split": []interface{}{":", map[string]interface{}{"Ref": logicalID(f, j.TaskDefinition())}}}}}))
	}
	if got, want := render(env[protocol.EnvTaskRevisions]), strings.Join(revs, ","); got != want {
		t.Errorf("%s = %s, want %s", protocol.EnvTaskRevisions, got, want)
	}
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
	ledger := getAtt(logicalID(f, f.app.Stack.Ledger.Table()), "Arn")
	runLog := ref(logicalID(f, f.app.Stack.Catalogue.LogGroup()))
	for _, j := range f.app.Stack.Catalogue.Jobs() {
		t.Run(j.Name(), func(t *testing.T) {
			role := logicalID(f, j.TaskRole())
			// WHEN we read everything the job's role may do
			got := identityStatements(f, role)
			// THEN outside the regions without SQS ABAC it is sending to run
			// queues tagged with this job (StringEquals: an untagged queue
			// matches no job), assuming the job's deployment role (issue
			// 22: the task role is the runner's), and the broker's Denies
			sendOwn := grant{Sid: "SendFeedbackToOwnRunQueues", Actions: []string{"sqs:SendMessage"}, Resources: []string{runQueueArn("test-broker")},
				Condition: map[string]interface{}{"StringEquals": map[string]interface{}{"aws:ResourceTag/deploy-broker:job": j.Name()}}}
			deployRole := logicalID(f, j.DeploymentRole())
			assume := grant{Sid: "AssumeTheJobsDeploymentRole", Actions: []string{"sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"},
				Resources: []string{getAtt(deployRole, "Arn")}}
			guard := []grant{
				{Sid: "NeverRegisterBrokerTaskDefinitions", Effect: "Deny", Actions: []string{"ecs:RegisterTaskDefinition"},
					Resources: []string{stackArn("ecs", "task-definition/test-broker-*")}},
				// review finding 9: no job runs another job's revision, nor
				// passes another job's role (or the broker's)
				{Sid: "NeverRunBrokerTaskDefinitions", Effect: "Deny", Actions: []string{"ecs:RunTask", "ecs:StartTask"},
					Resources: []string{stackArn("ecs", "task-definition/test-broker-*")}},
				{Sid: "NeverPassBrokerRoles", Effect: "Deny", Actions: []string{"iam:PassRole"},
					Resources: []string{"arn:" + partition + ":iam::" + account + ":role/deploy-broker/test-broker/*"}},
				{Sid: "NeverTamperWithRunQueues", Effect: "Deny", Actions: []string{
					"sqs:AddPermission", "sqs:ChangeMessageVisibility", "sqs:CreateQueue", "sqs:DeleteMessage", "sqs:DeleteQueue",
					"sqs:PurgeQueue", "sqs:ReceiveMessage", "sqs:RemovePermission", "sqs:SetQueueAttributes",
					"sqs:TagQueue", "sqs:UntagQueue"}, Resources: []string{runQueueArn("test-broker")}},
				{Sid: "NeverTouchTheRunLedger", Effect: "Deny", Actions: []string{"dynamodb:*"},
					Resources: []string{ledger, ledger + "/*"}},
				// Security review F3: nor the published view table (its
				// policy, whose Deny of item writes it would lift first, its
				// run pointers, the table)
				{Sid: "NeverTouchTheView", Effect: "Deny", Actions: []string{"dynamodb:*"},
					Resources: []string{stackArn("dynamodb", "table/test-broker-view"), stackArn("dynamodb", "table/test-broker-view/*")}},
				// Issue 22: nor the run log, the dispatcher, the broker
				// cluster and its tasks, nor the broker's lifecycle events
				{Sid: "NeverTouchTheRunLog", Effect: "Deny", Actions: []string{"logs:*"},
					Resources: []string{stackArn("logs", "log-group:"+runLog), stackArn("logs", "log-group:"+runLog+":*")}},
				{Sid: "NeverTouchTheDispatcher", Effect: "Deny", Actions: []string{"lambda:*"},
					Resources: []string{stackArn("lambda", "function:test-broker-dispatcher"), stackArn("lambda", "function:test-broker-dispatcher:*")}},
				{Sid: "NeverPublishToTheBroker", Effect: "Deny", Actions: []string{"sns:Publish"}, Resources: []string{stackArn("sns", "test-broker")}},
				{Sid: "NeverControlTheBrokerCluster", Effect: "Deny", Actions: []string{"ecs:*"}, Resources: []string{
					stackArn("ecs", "cluster/test-broker"), stackArn("ecs", "task/test-broker/*"), stackArn("ecs", "container-instance/test-broker/*"),
					stackArn("ecs", "service/test-broker/*"), stackArn("ecs", "task-set/test-broker/*")}},
				{Sid: "NeverControlTasksOnTheBrokerCluster", Effect: "Deny", Actions: []string{"ecs:*"}, Resources: []string{"*"},
					Condition: map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": stackArn("ecs", "cluster/test-broker")}}},
				{Sid: "NeverForgeLifecycleEvents", Effect: "Deny", Actions: []string{"events:PutEvents"}, Resources: []string{"*"},
					Condition: map[string]interface{}{"ForAnyValue:StringEquals": map[string]interface{}{"events:source": protocol.EventSource}}},
			}
			taskGuard := append(slices.Clone(guard), grant{Sid: "NeverWriteWarmInboxes", Effect: "Deny", Actions: JobDeniedInboxActions,
				Resources: []string{stackArn("sqs", "test-broker-warm-*")}})
			want := append([]grant{sendOwn, assume}, taskGuard...)
			// AND the deployment role holds the job's configured statements,
			// as written, the same Denies, and may not write to any run
			// queue: only the runner writes a run's feedback
			deployment := append(slices.Clone(guard), grant{Sid: "NeverWriteToRunQueues", Effect: "Deny", Actions: []string{"sqs:SendMessage"},
				Resources: []string{runQueueArn("test-broker")}},
				// Issue 26: nor any warm runner's inbox, in any way
				grant{Sid: "NeverTouchWarmInboxes", Effect: "Deny", Actions: []string{"sqs:*"}, Resources: []string{stackArn("sqs", "test-broker-warm-*")}})
			for _, st := range cfg.Jobs[j.Name()].Policy {
				deployment = append(deployment, grant{Sid: st.Sid, Effect: st.Effect, Actions: st.Actions, Resources: st.Resources, Condition: conditionOf(st)})
			}
			assertGrants(t, "job "+j.Name()+"'s deployment role", identityStatements(f, deployRole), deployment)
			// AND, with ABAC, whatever else it holds, it never sends to a run
			// queue not tagged with its job
			withAbac := append(slices.Clone(want), grant{Sid: "NeverSendToOtherJobsRunQueues", Effect: "Deny", Actions: []string{"sqs:SendMessage"},
				Resources: []string{runQueueArn("test-broker")},
				Condition: map[string]interface{}{"StringNotEquals": map[string]interface{}{"aws:ResourceTag/deploy-broker:job": j.Name()}}})
			assertGrants(t, "job "+j.Name()+" in eu-west-1", inRegion(t, f, "eu-west-1", got), withAbac)
			// AND in a region without SQS ABAC (Europe (Zurich)) it may also
			// send by the run-queue name pattern, by the stack's condition
			noAbac := append(slices.Clone(want), grant{Sid: "SendFeedbackToRunQueuesWithoutAbac", Actions: []string{"sqs:SendMessage"}, Resources: []string{runQueueArn("test-broker")}})
			assertGrants(t, "job "+j.Name()+" in eu-central-2", inRegion(t, f, "eu-central-2", got), noAbac)
			// AND the deployment role has exactly its managed policies, the
			// task role none
			props := f.resources()[role].(map[string]interface{})["Properties"].(map[string]interface{})
			dprops := f.resources()[deployRole].(map[string]interface{})["Properties"].(map[string]interface{})
			if got, want := strings.Join(list(dprops["ManagedPolicyArns"]), ","), strings.Join(cfg.Jobs[j.Name()].ManagedPolicies, ","); got != want {
				t.Errorf("managed policies %q, want %q", got, want)
			}
			if props["ManagedPolicyArns"] != nil {
				t.Errorf("the task role has managed policies %v", props["ManagedPolicyArns"])
			}
			// AND only the job's runner may assume the deployment role,
			// naming the run as source identity and tagging the session
			taskArn := getAtt(role, "Arn")
			assertGrants(t, "job "+j.Name()+"'s deployment role's trust", trustStatements(f, deployRole), []grant{
				{Actions: []string{"sts:AssumeRole"}, Condition: map[string]interface{}{"Null": map[string]interface{}{"sts:SourceIdentity": "false"}}},
				{Sid: "RunnerNamesTheRun", Actions: []string{"sts:SetSourceIdentity", "sts:TagSession"}},
			})
			for _, st := range trustStatements(f, deployRole) {
				if strings.Join(st.Principals, ",") != "AWS:"+taskArn {
					t.Errorf("deployment role trusts %v, want exactly the job's task role %s", st.Principals, taskArn)
				}
			}
			// AND it is outside the broker's role path, so the run queues'
			// own policies deny it sending too
			if got := dprops["Path"]; got != "/deploy-broker-job/test-broker/" {
				t.Errorf("deployment role path %v, want /deploy-broker-job/test-broker/", got)
			}
			// AND only ECS tasks of this account may assume it
			assertGrants(t, "job "+j.Name()+"'s trust", trustStatements(f, role), []grant{{
				Actions: []string{"sts:AssumeRole"},
				Condition: map[string]interface{}{
					"StringEquals": map[string]interface{}{"aws:SourceAccount": ref("AWS::AccountId")},
					"ArnLike":      map[string]interface{}{"aws:SourceArn": stackArn("ecs", "*")},
				},
			}})
			// AND it is under the broker's role path, which every job role
			// is denied passing
			if got := props["Path"]; got != "/deploy-broker/test-broker/" {
				t.Errorf("job role path %v, want /deploy-broker/test-broker/", got)
			}
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
		// AWS::IAM::Policy resources attached to exactly one job role are
		// that job's.
		policyOfJob := map[string]string{}
		for id, r := range f.resources() {
			res := r.(map[string]interface{})
			if res["Type"] != "AWS::IAM::Policy" {
				continue
			}
			roles := list(res["Properties"].(map[string]interface{})["Roles"])
			if len(roles) == 1 {
				for roleID, job := range roleOfJob {
					if roles[0] == ref(roleID) {
						policyOfJob[id] = job
					}
				}
			}
		}
		maps.Copy(roleOfJob, policyOfJob)
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
			if s.CfnCondition != "" {
				// The name-pattern fallback exists only where SQS has no ABAC.
				if s.CfnCondition != SqsAbacUnavailableCondition || len(s.Condition) != 0 {
					t.Errorf("job %s sends to run queues under CloudFormation condition %q if %s", job, s.CfnCondition, render(s.Condition))
				}
				for _, r := range []string{"eu-west-1", "us-east-1", "ap-northeast-1"} {
					if regionCondition(t, f, s.CfnCondition, r) {
						t.Errorf("the fallback without ABAC applies in %s", r)
					}
				}
				for _, r := range SqsAbacUnavailableRegions {
					if !regionCondition(t, f, s.CfnCondition, r) {
						t.Errorf("the fallback without ABAC does not apply in %s", r)
					}
				}
				continue
			}
			want := render(map[string]interface{}{"StringEquals": map[string]interface{}{"aws:ResourceTag/" + protocol.TagJob: job}})
			if got := render(s.Condition); got != want {
				t.Errorf("job %s sends to run queues if %s, want if %s", job, got, want)
			}
			senders[job] = true
		}
		if len(senders) != len(f.app.Stack.Catalogue.Jobs()) {
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
	// AND its trust policy is the one the "Amazon ECS task execution IAM
	// role" page documents: the service principal, no confused-deputy
	// condition (none is documented for the agent's pulls and secret reads)
	assertGrants(t, "the execution role's trust", trustStatements(f, role), []grant{{Actions: []string{"sts:AssumeRole"}}})
	// AND it and the dispatcher's role are under the broker's role path,
	// which every job role is denied passing (review finding 9)
	for _, r := range []string{role, logicalID(f, s.Dispatcher.Role())} {
		props := f.resources()[r].(map[string]interface{})["Properties"].(map[string]interface{})
		if got := props["Path"]; got != "/deploy-broker/test-broker/" {
			t.Errorf("role %s path %v, want /deploy-broker/test-broker/", r, got)
		}
	}
}

// Nothing in the stack can be assumed or used by anyone the table does not
// name: every trust policy is one of the known ones.
func TestOnlyKnownPrincipalsAssumeRoles(t *testing.T) {
	f := mainStack(t)
	runnerOf := map[string]string{} // deployment role → "AWS:" + its task role's ARN
	for _, j := range f.app.Stack.Catalogue.Jobs() {
		runnerOf[logicalID(f, j.DeploymentRole())] = "AWS:" + getAtt(logicalID(f, j.TaskRole()), "Arn")
	}
	reader := "" // the main stack has no viewers: no reader role
	if f.app.Stack.ReaderRole != nil {
		reader = logicalID(f, f.app.Stack.ReaderRole.Role())
	}
	for _, s := range allStatements(f) {
		if s.Doc != "trust" || s.LogicalID == reader { // the viewers: readerrole_test.go
			continue
		}
		p := strings.Join(s.Principals, ",")
		switch p {
		case "Service:ecs-tasks.amazonaws.com", "Service:lambda.amazonaws.com", "Service:vpc-flow-logs.amazonaws.com":
		case runnerOf[s.LogicalID]: // a job's deployment role: its runner
		default:
			if !strings.HasPrefix(p, "Federated:") {
				t.Errorf("role %s is assumable by %s", s.LogicalID, p)
			}
		}
	}
}

// broker.run_log_key: create encrypts the run log group (every run's
// unredacted output) with a key of the stack that CloudWatch Logs of this
// region may use for that log group only.
func TestRunLogGroupIsEncryptedWithItsOwnKey(t *testing.T) {
	f := mainStack(t)
	group := logicalID(f, f.app.Stack.Catalogue.LogGroup())
	props := f.resources()[group].(map[string]interface{})["Properties"].(map[string]interface{})
	if got := render(props["LogGroupName"]); got != "/deploy-broker/test-broker/runs" {
		t.Errorf("run log group name %q", got)
	}
	keyID := strings.TrimSuffix(strings.TrimPrefix(render(props["KmsKeyId"]), "${"), ".Arn}")
	key, ok := f.resources()[keyID].(map[string]interface{})
	if !ok || key["Type"] != "AWS::KMS::Key" {
		t.Fatalf("run log group KmsKeyId %s is no key of the stack", render(props["KmsKeyId"]))
	}
	if kp := key["Properties"].(map[string]interface{}); kp["EnableKeyRotation"] != true {
		t.Errorf("run log key without rotation")
	}
	var got []statement
	for _, s := range allStatements(f) {
		if s.LogicalID == keyID && s.Sid != "" {
			got = append(got, s)
		}
	}
	assertGrants(t, "the run log key's service statement", got, []grant{{
		Sid:     "CloudWatchLogsUsesKeyForRunLogGroupOnly",
		Actions: []string{"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"}, Resources: []string{"*"},
		Condition: map[string]interface{}{"ArnEquals": map[string]interface{}{
			"kms:EncryptionContext:aws:logs:arn": stackArn("logs", "log-group:/deploy-broker/test-broker/runs")}},
	}})
	if len(got) == 1 && strings.Join(got[0].Principals, ",") != "Service:logs."+region+".amazonaws.com" {
		t.Errorf("run log key statement principals %v", got[0].Principals)
	}
	// AND without run_log_key the group keeps CloudWatch Logs' encryption
	other := otherStack(t)
	op := other.resources()[logicalID(other, other.app.Stack.Catalogue.LogGroup())].(map[string]interface{})["Properties"].(map[string]interface{})
	if op["KmsKeyId"] != nil {
		t.Errorf("run log group of a configuration without run_log_key has key %v", op["KmsKeyId"])
	}
}

// Issue 12: no policy of the stack grants the trusted principals (or
// anyone) reading or deleting run queue messages as a resource-policy
// grant: the only such grants are each run queue's own policy, made by the
// dispatcher for that run's verified requester, and the identity policies
// of roles the stack makes (the GitHub trigger role, the dispatcher).
func TestNoStackPolicyLetsTrustedPrincipalsReadEveryRunQueue(t *testing.T) {
	f := mainStack(t)
	for _, s := range allStatements(f) {
		if s.Effect == "Deny" || len(s.Principals) == 0 {
			continue
		}
		for _, a := range s.Actions {
			switch a {
			case "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:*", "*":
				t.Errorf("a resource policy grants %v %s: %s", s.Principals, a, s)
			}
		}
	}
}
