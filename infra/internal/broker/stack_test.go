package broker

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestTwoJobsMakeTwoTaskDefinitionsAndTwoTaskRoles(t *testing.T) {
	// GIVEN a configuration with the jobs website and migrate
	f := mainStack(t)
	// WHEN it is synthesized
	// THEN there are two task definitions, one per family
	count(t, f.template, "AWS::ECS::TaskDefinition", 2)
	roles := map[string]bool{}
	for _, r := range *f.template.FindResources(jsii.String("AWS::ECS::TaskDefinition"), nil) {
		props := (*r)["Properties"].(map[string]interface{})
		roles[render(props["TaskRoleArn"])] = true
		if render(props["TaskRoleArn"]) == render(props["ExecutionRoleArn"]) {
			t.Error("a task definition uses the execution role as its task role")
		}
	}
	// AND two distinct task roles
	if len(roles) != 2 {
		t.Errorf("task roles %v, want two distinct", roles)
	}
	has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{"Family": "test-broker-website", "Cpu": "256", "Memory": "512"}))
	has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{"Family": "test-broker-migrate", "Cpu": "512", "Memory": "1024"}))
}

func TestRunnerContainer(t *testing.T) {
	// GIVEN a job with environment and secrets
	f := mainStack(t)
	logs := logicalID(f, f.app.Stack.Catalogue.LogGroup())
	var role string
	for _, j := range f.app.Stack.Catalogue.Jobs() {
		if j.Name() == "migrate" {
			role = logicalID(f, j.DeploymentRole())
		}
	}
	// THEN its task definition has one "runner" container: the job's image,
	// read-only root, /tmp scratch, awslogs, stop timeout grace+10s, the
	// static environment and the secrets exactly as configured
	has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{
		"Family":                  "test-broker-migrate",
		"RequiresCompatibilities": arr{"FARGATE"},
		"NetworkMode":             "awsvpc",
		"Volumes":                 arr{obj{"Name": "tmp"}},
		"ContainerDefinitions": arr{like(obj{
			"Name":                   "runner",
			"Image":                  "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tools/migrate:2.3.4",
			"Essential":              true,
			"ReadonlyRootFilesystem": true,
			"StopTimeout":            40,
			// ECS's init process is PID 1 and reaps the job's orphans; the
			// runner is root with only CHOWN, KILL, SETGID and SETUID of
			// Docker's defaults, to run the job under another uid
			"User": "0:0",
			"LinuxParameters": like(obj{"InitProcessEnabled": true, "Capabilities": obj{"Drop": arr{
				"AUDIT_WRITE", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETPCAP", "SYS_CHROOT"}}}),
			"MountPoints": arr{obj{"ContainerPath": "/tmp", "SourceVolume": "tmp", "ReadOnly": false}},
			"LogConfiguration": like(obj{"LogDriver": "awslogs", "Options": like(obj{
				"awslogs-group": obj{"Ref": logs}, "awslogs-stream-prefix": "migrate",
			})}),
			"Environment": assertions.Match_ArrayEquals(&[]interface{}{
				obj{"Name": "DB_HOST", "Value": "db.internal.example"},
				// the deployment role the runner assumes for the job
				obj{"Name": "DEPLOY_BROKER_JOB_ROLE_ARN", "Value": obj{"Fn::GetAtt": arr{role, "Arn"}}},
				// the runner's stdout is the run log (logs, attach)
				obj{"Name": "DEPLOY_BROKER_LOG_FORMAT", "Value": "records"},
				obj{"Name": "HOME", "Value": "/tmp"},
			}),
			"Secrets": assertions.Match_ArrayEquals(&[]interface{}{
				obj{"Name": "API_TOKEN", "ValueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/deploy/api-token"},
				obj{"Name": "DB_PASSWORD", "ValueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password::"},
			}),
			// the command comes with RunTask; the entrypoint is the image's
			"Command":    assertions.Match_Absent(),
			"EntryPoint": assertions.Match_Absent(),
		})},
	}))
	has(t, f.template, "AWS::Logs::LogGroup", like(obj{"RetentionInDays": 30}))
}

func TestDispatcherFunction(t *testing.T) {
	// GIVEN the main stack
	f := mainStack(t)
	s := f.app.Stack
	fn := logicalID(f, s.Dispatcher.Function())
	topic := logicalID(f, s.Topic.Topic())
	dlq := logicalID(f, s.Dispatcher.DeadLetterQueue())
	// THEN the dispatcher is the Go binary on provided.al2023/arm64 with the
	// contract's environment
	count(t, f.template, "AWS::Lambda::Function", 2) // and the published view's writer (view.go)
	has(t, f.template, "AWS::Lambda::Function", like(obj{
		"Runtime": "provided.al2023", "Architectures": arr{"arm64"}, "Handler": "bootstrap",
		"ReservedConcurrentExecutions": DispatcherReservedConcurrency,
		"DeadLetterConfig":             obj{"TargetArn": obj{"Fn::GetAtt": arr{dlq, "Arn"}}},
		"LoggingConfig":                like(obj{"LogGroup": obj{"Ref": logicalID(f, s.Dispatcher.LogGroup())}}),
		"Environment": obj{"Variables": obj{
			protocol.EnvConfig:          "/var/task/broker.yaml",
			protocol.EnvCluster:         obj{"Fn::GetAtt": arr{logicalID(f, s.Cluster), "Arn"}},
			protocol.EnvLedgerTable:     obj{"Ref": logicalID(f, s.Ledger.Table())},
			protocol.EnvRunLogGroup:     obj{"Ref": logicalID(f, s.Catalogue.LogGroup())},
			protocol.EnvSubnets:         like(obj{"Fn::Join": assertions.Match_AnyValue()}),
			protocol.EnvSecurityGroups:  like(obj{"Fn::GetAtt": assertions.Match_AnyValue()}),
			protocol.EnvAssignPublicIP:  "false",
			protocol.EnvExtraPrincipals: obj{"Fn::GetAtt": arr{logicalID(f, s.TriggerRole.Role()), "Arn"}},
			protocol.EnvAccountID:       obj{"Ref": "AWS::AccountId"},
		}},
	}))
	// AND async events are retried briefly: no longer than max_request_age (10m)
	has(t, f.template, "AWS::Lambda::EventInvokeConfig", like(obj{"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": DispatcherRetryAttempts}))
	// AND its dead-letter queue is encrypted and TLS only
	has(t, f.template, "AWS::SQS::Queue", like(obj{"QueueName": "dlq-test-broker-dispatcher", "SqsManagedSseEnabled": true}))
	has(t, f.template, "AWS::SQS::QueuePolicy", like(obj{"PolicyDocument": like(obj{"Statement": arrayWith(like(obj{
		"Effect": "Deny", "Action": "sqs:*", "Condition": obj{"Bool": obj{"aws:SecureTransport": "false"}},
	}))})}))
	// AND the topic delivers to it, with a permission scoped to the topic
	has(t, f.template, "AWS::SNS::Subscription", like(obj{
		"Protocol": "lambda", "TopicArn": obj{"Ref": topic}, "Endpoint": obj{"Fn::GetAtt": arr{fn, "Arn"}},
		"RedrivePolicy": obj{"deadLetterTargetArn": obj{"Fn::GetAtt": arr{dlq, "Arn"}}},
	}))
	has(t, f.template, "AWS::Lambda::Permission", like(obj{"Principal": "sns.amazonaws.com", "SourceArn": obj{"Ref": topic}}))
	// AND the topic refuses non-TLS publishing
	has(t, f.template, "AWS::SNS::TopicPolicy", like(obj{"PolicyDocument": like(obj{"Statement": arrayWith(like(obj{
		"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Condition": obj{"Bool": obj{"aws:SecureTransport": "false"}},
	}))})}))
	// AND every permission to invoke it names its source
	for _, st := range allStatements(f) {
		if st.ResourceType == "AWS::Lambda::Permission" && st.Condition["SourceArn"] == "" {
			t.Errorf("Lambda permission %s has no source ARN", st.LogicalID)
		}
	}
}

func TestEventBridgeRules(t *testing.T) {
	f := mainStack(t)
	cluster := logicalID(f, f.app.Stack.Cluster)
	fn := logicalID(f, f.app.Stack.Dispatcher.Function())
	target := arrayWith(like(obj{
		"Arn":              obj{"Fn::GetAtt": arr{fn, "Arn"}},
		"DeadLetterConfig": like(obj{}),
		"RetryPolicy":      obj{"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": DispatcherRetryAttempts},
	}))
	// THEN task state changes of this cluster only reach the dispatcher
	has(t, f.template, "AWS::Events::Rule", like(obj{
		"EventPattern": obj{
			"source": arr{"aws.ecs"}, "detail-type": arr{"ECS Task State Change"},
			"detail": obj{"clusterArn": arr{obj{"Fn::GetAtt": arr{cluster, "Arn"}}}},
		},
		"Targets": target,
	}))
	// AND the sweep runs every 5 minutes (rejected runs' queues go within minutes)
	has(t, f.template, "AWS::Events::Rule", like(obj{"ScheduleExpression": "rate(5 minutes)", "Targets": target}))
	has(t, f.template, "AWS::Lambda::Permission", like(obj{"Principal": "events.amazonaws.com", "SourceArn": like(obj{"Fn::GetAtt": assertions.Match_AnyValue()})}))
}

func TestLedgerClusterNetworkAlarmsOutputs(t *testing.T) {
	f := mainStack(t)
	// Run ledger: on-demand, PITR, encrypted, TTL, kept on delete
	has(t, f.template, "AWS::DynamoDB::Table", like(obj{
		"KeySchema":            arr{obj{"AttributeName": "run_id", "KeyType": "HASH"}},
		"AttributeDefinitions": arr{obj{"AttributeName": "run_id", "AttributeType": "S"}, obj{"AttributeName": "history", "AttributeType": "S"}},
		// The history index: runs and show Query it (never Scan).
		"GlobalSecondaryIndexes": arr{obj{
			"IndexName":  "history",
			"KeySchema":  arr{obj{"AttributeName": "history", "KeyType": "HASH"}, obj{"AttributeName": "run_id", "KeyType": "RANGE"}},
			"Projection": obj{"ProjectionType": "ALL"},
		}},
		"BillingMode":                      "PAY_PER_REQUEST",
		"PointInTimeRecoverySpecification": obj{"PointInTimeRecoveryEnabled": true},
		"SSESpecification":                 like(obj{"SSEEnabled": true}),
		"TimeToLiveSpecification":          obj{"AttributeName": "expires_at", "Enabled": true},
	}))
	f.template.HasResource(jsii.String("AWS::DynamoDB::Table"), like(obj{"DeletionPolicy": "Retain"}))
	// Cluster with Container Insights
	has(t, f.template, "AWS::ECS::Cluster", like(obj{
		"ClusterName":     "test-broker",
		"ClusterSettings": arr{obj{"Name": "containerInsights", "Value": "enabled"}},
	}))
	// New VPC: flow logs, a task security group with no inbound rule
	count(t, f.template, "AWS::EC2::VPC", 1)
	has(t, f.template, "AWS::EC2::FlowLog", like(obj{"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}))
	has(t, f.template, "AWS::EC2::SecurityGroup", like(obj{"SecurityGroupIngress": assertions.Match_Absent()}))
	count(t, f.template, "AWS::EC2::SecurityGroupIngress", 0)
	// Every log group keeps log_retention_days
	for id, r := range *f.template.FindResources(jsii.String("AWS::Logs::LogGroup"), nil) {
		if got := (*r)["Properties"].(map[string]interface{})["RetentionInDays"]; got != float64(30) {
			t.Errorf("log group %s keeps logs %v days, want 30", id, got)
		}
	}
	// Alarms on dead letters, errors, throttles
	count(t, f.template, "AWS::CloudWatch::Alarm", 3)
	for _, m := range []string{"ApproximateNumberOfMessagesVisible", "Errors", "Throttles"} {
		has(t, f.template, "AWS::CloudWatch::Alarm", like(obj{"MetricName": m, "Threshold": 1}))
	}
	// Outputs a deploy-trigger environment entry is made from
	outputs := f.json["Outputs"].(map[string]interface{})
	for _, o := range []string{"TopicArn", "Region", "AccountId", "AccountAlias", "TriggerRoleArn", "ClusterArn", "LedgerTable", "TopicKeyArn", "RunQueueArnPattern"} {
		if _, ok := outputs[o]; !ok {
			t.Errorf("output %s missing", o)
		}
	}
	if got := outputs["AccountAlias"].(map[string]interface{})["Value"]; got != "test-prod" {
		t.Errorf("AccountAlias output %v", got)
	}
}

func TestExistingNetworkAndOIDCProvider(t *testing.T) {
	// GIVEN a configuration naming subnets, a security group, public IPs and
	// an existing OIDC provider (read through the "config" context)
	f := otherStack(t)
	// THEN no VPC and no provider are created
	count(t, f.template, "AWS::EC2::VPC", 0)
	count(t, f.template, "AWS::IAM::OIDCProvider", 0)
	// AND the dispatcher places tasks in the configured network
	has(t, f.template, "AWS::Lambda::Function", like(obj{"Environment": obj{"Variables": like(obj{
		protocol.EnvSubnets:        "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
		protocol.EnvSecurityGroups: "sg-0cccccccccccccccc",
		protocol.EnvAssignPublicIP: "true",
	})}}))
	// AND the trigger role trusts the given provider
	has(t, f.template, "AWS::IAM::Role", like(obj{"AssumeRolePolicyDocument": like(obj{"Statement": arr{like(obj{
		"Principal": obj{"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
	})}}), "MaxSessionDuration": 3600}))
	// AND one job makes one task definition, in family other-hello, with
	// ECS's init process
	count(t, f.template, "AWS::ECS::TaskDefinition", 1)
	has(t, f.template, "AWS::ECS::TaskDefinition", like(obj{"Family": "other-hello",
		"ContainerDefinitions": arr{like(obj{"LinuxParameters": like(obj{"InitProcessEnabled": true})})}}))
	// AND a public image needs no ECR permission
	for _, s := range allStatements(f) {
		for _, a := range s.Actions {
			if strings.HasPrefix(a, "ecr:") {
				t.Errorf("%s grants %s for a public image", s, a)
			}
		}
	}
}

// The dispatcher package is the real `go build` output and the
// configuration file, side by side.
func TestDispatcherBundleIsTheArm64BinaryAndTheConfig(t *testing.T) {
	f := mainStack(t)
	dirs, _ := filepath.Glob(filepath.Join(f.outdir, "asset.*"))
	var found bool
	for _, dir := range dirs {
		boot := filepath.Join(dir, "bootstrap")
		if _, err := os.Stat(boot); err != nil {
			continue
		}
		found = true
		bin, err := elf.Open(boot)
		if err != nil {
			t.Fatalf("bootstrap is not an ELF executable: %v", err)
		}
		if bin.Machine != elf.EM_AARCH64 {
			t.Errorf("bootstrap is built for %v, want arm64", bin.Machine)
		}
		if interp := bin.Section(".interp"); interp != nil {
			t.Error("bootstrap is dynamically linked; want CGO_ENABLED=0")
		}
		bin.Close()
		got, _ := os.ReadFile(filepath.Join(dir, BundledConfigName))
		want, _ := os.ReadFile("testdata/broker.yaml")
		if !bytes.Equal(got, want) || len(got) == 0 {
			t.Error("broker.yaml in the bundle differs from the configuration file")
		}
	}
	if !found {
		t.Fatalf("no dispatcher bundle in %s", f.outdir)
	}
}

func TestInvalidConfigurationFailsWithAClearMessage(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no principals", `
broker: {name: bad}
runner: {image: x/y:1}
jobs: {hello: {command: [/bin/true]}}
`, "trusted_principals is empty"},
		{"wildcard action", `
broker: {name: bad}
trusted_principals: ["111111111111"]
runner: {image: x/y:1}
jobs: {hello: {command: [/bin/true], policy: [{actions: ["s3:*"], resources: ["*"]}]}}
`, `action "s3:*" grants a whole service`},
		{"retention CloudWatch refuses", `
broker: {name: bad, log_retention_days: 42}
trusted_principals: ["111111111111"]
runner: {image: x/y:1}
jobs: {hello: {command: [/bin/true]}}
`, "log_retention_days 42 is not a retention CloudWatch Logs accepts"},
		{"grace longer than Fargate allows", `
broker: {name: bad}
trusted_principals: ["111111111111"]
runner: {image: x/y:1, grace: 2m}
jobs: {hello: {command: [/bin/true]}}
`, "runner.grace 2m0s is too long"},
		{"secret that is no ARN ECS takes", `
broker: {name: bad}
trusted_principals: ["111111111111"]
runner: {image: x/y:1}
jobs: {hello: {command: [/bin/true], secrets: {TOKEN: "arn:aws:s3:::bucket/token"}}}
`, `job "hello": secret TOKEN: "arn:aws:s3:::bucket/token" is neither`},
		{"sid IAM refuses", `
broker: {name: bad}
trusted_principals: ["111111111111"]
runner: {image: x/y:1}
jobs: {hello: {command: [/bin/true], policy: [{sid: "not ok", actions: ["s3:GetObject"], resources: ["arn:aws:s3:::b/k"]}]}}
`, `policy[0] sid "not ok" may hold only letters and digits`},
		{"more job revisions than Lambda's environment holds", `
broker: {name: bad}
trusted_principals: ["111111111111"]
runner: {image: x/y:1}
jobs:
` + manyJobs(45, 60), "more than the 3000 that fit in Lambda's 4 KB of environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// GIVEN an invalid configuration file
			path := filepath.Join(t.TempDir(), "broker.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			// WHEN the app is built from it
			app, err := NewApp(Options{ConfigPath: path, RepoRoot: repoRoot(t), Build: placeholderBuild,
				AppProps: &awscdk.AppProps{Outdir: jsii.String(t.TempDir())}})
			// THEN it fails, saying what is wrong and in which file
			if err == nil {
				t.Fatalf("built an app (%v) from an invalid configuration", app)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q, want it to name %s and say %q", err, path, tc.want)
			}
		})
	}
}

func TestFailedDispatcherBuildFailsSynth(t *testing.T) {
	// GIVEN a dispatcher that does not compile
	broken := func(string, string) error { return os.ErrNotExist }
	// WHEN the app is built
	_, err := NewApp(Options{ConfigPath: "testdata/existing-network.yaml", RepoRoot: repoRoot(t), Build: broken,
		AppProps: &awscdk.AppProps{Outdir: jsii.String(t.TempDir())}})
	// THEN synth fails with the build's error, not Docker's
	if err == nil || !strings.Contains(err.Error(), "bundling the dispatcher Lambda") || !strings.Contains(err.Error(), os.ErrNotExist.Error()) {
		t.Errorf("error %v, want the bundling failure", err)
	}
}

// manyJobs is a jobs: section of n jobs with names of length nameLen.
func manyJobs(n, nameLen int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("job-%d-", i)
		name += strings.Repeat("x", nameLen-len(name))
		fmt.Fprintf(&b, "  %s: {command: [/bin/true]}\n", name)
	}
	return b.String()
}

// warnings are the synth warnings of a fixture's stack, as text.
func warnings(f *fixture) []string {
	var out []string
	for _, m := range *assertions.Annotations_FromStack(f.app.Stack.Stack).FindWarning(jsii.String("*"), assertions.Match_AnyValue()) {
		//lint:ignore SA1019 FindWarning returns cxapi.SynthesisMessage; the type is deprecated only because its JS definition moved to @aws-cdk/cloud-assembly-api, which has no Go binding
		out = append(out, fmt.Sprint(m.Entry.Data))
	}
	return out
}

func countContaining(msgs []string, subs ...string) int {
	n := 0
	for _, m := range msgs {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(m, s)
		}
		if all {
			n++
		}
	}
	return n
}

// Synth says what will not deploy (a principal in an example's placeholder
// account: KMS rejects a key policy naming a principal that does not
// exist) and what should not (an image by mutable tag).
func TestSynthWarnsOfPlaceholderPrincipalsAndMutableImages(t *testing.T) {
	// GIVEN the test configurations: principals and OIDC provider in
	// placeholder accounts, images by tag
	main, other := warnings(mainStack(t)), warnings(otherStack(t))
	// THEN each such principal is named in a warning
	for _, c := range []struct {
		msgs      []string
		principal string
	}{
		{main, "arn:aws:iam::111111111111:role/jenkins-deployer"},
		{main, "principal 222222222222 "},
		{other, "arn:aws:iam::111111111111:role/ci"},
		{other, "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
	} {
		if countContaining(c.msgs, c.principal, "placeholder account") != 1 {
			t.Errorf("no warning for principal %s in %q", c.principal, c.msgs)
		}
	}
	// AND each job image by tag
	for _, c := range []struct {
		msgs       []string
		job, image string
	}{
		{main, "website", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/deploy-runner:1.0.0"},
		{main, "migrate", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tools/migrate:2.3.4"},
		{other, "hello", "public.ecr.aws/example/deploy-runner:1"},
	} {
		if countContaining(c.msgs, "job "+c.job+" runs image "+c.image+" by a mutable tag") != 1 {
			t.Errorf("no mutable-tag warning for job %s in %q", c.job, c.msgs)
		}
	}
}

// The example configuration pins the runner image by digest: synth warns
// only of its placeholder principals.
func TestExampleConfigurationPinsItsImageByDigest(t *testing.T) {
	f := synth(repoRoot(t), "../../../examples/broker.yaml", placeholderBuild)
	if f.err != nil {
		t.Fatalf("synthesizing examples/broker.yaml: %v", f.err)
	}
	msgs := warnings(f)
	if n := countContaining(msgs, "mutable tag"); n != 0 {
		t.Errorf("mutable-tag warnings for the example: %q", msgs)
	}
	if n := countContaining(msgs, "placeholder account 111111111111"); n != 2 {
		t.Errorf("%d placeholder warnings for the example's two principals, want 2: %q", n, msgs)
	}
}
