package dispatcher

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// What these tests prove: the policy document the dispatcher writes, as
// JSON, statement by statement. IAM's evaluation of it (an explicit Deny in
// a resource policy wins over any identity policy's Allow, in the same
// account too) is AWS's; the iam-eval tool evaluates these documents.

const testQueue = "arn:aws:sqs:eu-west-1:123456789012:b-01JD5Q3ZC8W2V9T6R4N1M7K0HX.fifo"
const testBrokerRoles = "arn:aws:iam::123456789012:role/deploy-broker/b/*"

type policyStatement struct {
	Sid       string
	Effect    string
	Principal any
	Action    any
	Resource  string
	Condition map[string]map[string]any
}

func queuePolicyStatements(t *testing.T, a RunQueueAccess) map[string]policyStatement {
	t.Helper()
	raw, err := QueuePolicy(a)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Statement []policyStatement }
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]policyStatement{}
	for _, s := range doc.Statement {
		if _, dup := out[s.Sid]; dup || s.Sid == "" || s.Resource != a.QueueARN {
			t.Fatalf("statement %+v (duplicate, no Sid or another resource) in %s", s, raw)
		}
		out[s.Sid] = s
	}
	return out
}

func mustPrincipal(t *testing.T, arn string) identity.Principal {
	t.Helper()
	p, err := identity.PrincipalFromARN(arn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func anyStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// The run queue's policy grants reading to the verified requester only:
// its role (any session, any path) or its user, in its own account; never
// a list of every trusted principal.
func TestQueuePolicyGrantsTheRequesterOnly(t *testing.T) {
	for _, c := range []struct {
		arn, root string
		want      []any
	}{
		{"arn:aws:sts::111111111111:assumed-role/github-deployer/gha-org-app-1234", "arn:aws:iam::111111111111:root",
			[]any{"arn:aws:iam::111111111111:role/github-deployer", "arn:aws:iam::111111111111:role/*/github-deployer"}},
		{"arn:aws-cn:sts::222222222222:assumed-role/ci/s1", "arn:aws-cn:iam::222222222222:root",
			[]any{"arn:aws-cn:iam::222222222222:role/ci", "arn:aws-cn:iam::222222222222:role/*/ci"}},
		{"arn:aws:iam::333333333333:user/ops/alice", "arn:aws:iam::333333333333:root",
			[]any{"arn:aws:iam::333333333333:user/ops/alice"}},
	} {
		st := queuePolicyStatements(t, RunQueueAccess{QueueARN: testQueue, Requester: mustPrincipal(t, c.arn), BrokerRoles: testBrokerRoles})
		allow := st[SidRequesterReadsRun]
		if allow.Effect != "Allow" || !reflect.DeepEqual(allow.Principal, map[string]any{"AWS": c.root}) {
			t.Errorf("%s: allow statement %+v", c.arn, allow)
		}
		if got := allow.Condition["ArnLike"]["aws:PrincipalArn"]; !reflect.DeepEqual(got, c.want) || len(allow.Condition) != 1 {
			t.Errorf("%s: condition %v, want ArnLike aws:PrincipalArn %v", c.arn, allow.Condition, c.want)
		}
		deny := st[SidDenyInsecureTransport]
		if deny.Effect != "Deny" || deny.Principal != "*" || deny.Condition["Bool"]["aws:SecureTransport"] != "false" {
			t.Errorf("%s: deny statement %+v", c.arn, deny)
		}
		if len(st) != 4 {
			t.Errorf("%s: statements %v", c.arn, slices.Sorted(func(yield func(string) bool) {
				for k := range st {
					if !yield(k) {
						return
					}
				}
			}))
		}
	}
	if _, err := QueuePolicy(RunQueueAccess{QueueARN: testQueue, BrokerRoles: testBrokerRoles}); err == nil {
		t.Error("a policy without a principal was made")
	}
	if _, err := QueuePolicy(RunQueueAccess{QueueARN: testQueue, Requester: mustPrincipal(t, "arn:aws:sts::111111111111:assumed-role/ci/s1")}); err == nil {
		t.Error("a policy without the broker's roles was made")
	}
}

// Issue 22, finding 1: an Allow in the queue policy cannot stop a
// same-account principal whose identity policy grants it every run queue
// (the GitHub trigger role of another workflow, a Jenkins role with sqs:*):
// only an explicit Deny for every principal but the requester can. Reading,
// deleting, changing visibility, reading attributes and purging are denied
// to every principal whose aws:PrincipalArn is not the requester's role (or
// user), with no exception for the runner or the dispatcher (neither reads a
// run queue); sending, deleting the queue and changing its tags, attributes
// or permissions to every principal but the broker's own roles. Nothing
// depends on the run id being secret.
func TestQueuePolicyDeniesEveryoneButTheRequester(t *testing.T) {
	for _, c := range []struct {
		arn  string
		want []string
	}{
		{"arn:aws:sts::111111111111:assumed-role/jenkins/build-7", []string{"arn:aws:iam::111111111111:role/jenkins", "arn:aws:iam::111111111111:role/*/jenkins"}},
		{"arn:aws:iam::123456789012:user/ops/alice", []string{"arn:aws:iam::123456789012:user/ops/alice"}},
	} {
		st := queuePolicyStatements(t, RunQueueAccess{QueueARN: testQueue, Requester: mustPrincipal(t, c.arn), BrokerRoles: testBrokerRoles})
		read, ok := st[SidOnlyRequesterReadsRun]
		if !ok || read.Effect != "Deny" || read.Principal != "*" {
			t.Fatalf("%s: no Deny %s for everyone: %+v", c.arn, SidOnlyRequesterReadsRun, st)
		}
		for _, a := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:PurgeQueue"} {
			if !slices.Contains(anyStrings(read.Action), a) {
				t.Errorf("%s: %s does not deny %s", c.arn, SidOnlyRequesterReadsRun, a)
			}
		}
		if len(read.Condition) != 1 || !slices.Equal(anyStrings(read.Condition["ArnNotLike"]["aws:PrincipalArn"]), c.want) {
			t.Errorf("%s: %s condition %v, want exactly ArnNotLike aws:PrincipalArn %v", c.arn, SidOnlyRequesterReadsRun, read.Condition, c.want)
		}
		write, ok := st[SidOnlyBrokerWritesOrManagesRun]
		if !ok || write.Effect != "Deny" || write.Principal != "*" {
			t.Fatalf("%s: no Deny %s for everyone: %+v", c.arn, SidOnlyBrokerWritesOrManagesRun, st)
		}
		for _, a := range []string{"sqs:SendMessage", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:AddPermission", "sqs:RemovePermission", "sqs:TagQueue", "sqs:UntagQueue"} {
			if !slices.Contains(anyStrings(write.Action), a) {
				t.Errorf("%s: %s does not deny %s", c.arn, SidOnlyBrokerWritesOrManagesRun, a)
			}
		}
		if len(write.Condition) != 1 || !slices.Equal(anyStrings(write.Condition["ArnNotLike"]["aws:PrincipalArn"]), []string{testBrokerRoles}) {
			t.Errorf("%s: %s condition %v, want exactly ArnNotLike aws:PrincipalArn %s", c.arn, SidOnlyBrokerWritesOrManagesRun, write.Condition, testBrokerRoles)
		}
	}
}

// When only a session pattern of the job's allowed_principals let the
// requester in, the sessions of its role the pattern does not name are
// denied too: a second Deny on aws:userid ("ROLEID:SESSION"), since the
// conditions of one statement are ANDed. A glob IAM cannot express falls
// back to the requester's own session.
func TestQueuePolicyDeniesSessionsThePatternExcludes(t *testing.T) {
	p := mustPrincipal(t, "arn:aws:sts::111111111111:assumed-role/jenkins/release-42")
	for _, c := range []struct{ pattern, want string }{
		{"arn:aws:sts::111111111111:assumed-role/jenkins/release-*", "*:release-*"},
		{"arn:aws:sts::111111111111:assumed-role/jenkins/release-4?", "*:release-4?"},
		{"arn:aws:sts::111111111111:assumed-role/jenkins/release-[0-9]*", "*:release-42"},
	} {
		st := queuePolicyStatements(t, RunQueueAccess{QueueARN: testQueue, Requester: p, SessionPattern: c.pattern, BrokerRoles: testBrokerRoles})
		s, ok := st[SidOnlyAdmittedSessionsReadRun]
		if !ok || s.Effect != "Deny" || s.Principal != "*" || !slices.Contains(anyStrings(s.Action), "sqs:ReceiveMessage") {
			t.Fatalf("%s: statement %+v", c.pattern, s)
		}
		if got := anyStrings(s.Condition["StringNotLike"]["aws:userid"]); len(s.Condition) != 2 || !slices.Equal(got, []string{c.want}) ||
			s.Condition["Null"]["aws:userid"] != "false" {
			t.Errorf("%s: condition %v, want StringNotLike aws:userid %s where aws:userid is not null", c.pattern, s.Condition, c.want)
		}
		// The Allow stays role-wide (the Deny narrows it).
		if got := st[SidRequesterReadsRun].Condition; len(got) != 1 || got["ArnLike"] == nil {
			t.Errorf("%s: allow condition %v", c.pattern, got)
		}
	}
}

// The dispatcher writes the policy for the run's admission: role-wide when
// the job has no allowed_principals, the session pattern that admitted the
// requester otherwise; the broker's roles are those under its role path, in
// its own partition and account.
func TestRunQueuePolicyOfTheDispatcher(t *testing.T) {
	cfg := &config.Config{
		Broker:            config.Broker{Name: "b"},
		TrustedPrincipals: []string{"arn:aws-cn:iam::111111111111:role/jenkins"},
		Jobs: map[string]config.Job{
			"open":    {},
			"release": {AllowedPrincipals: []string{"arn:aws-cn:sts::111111111111:assumed-role/jenkins/release-*"}},
		},
	}
	d := New(cfg, Settings{Cluster: "arn:aws-cn:ecs:cn-north-1:123456789012:cluster/b", Region: "cn-north-1", AccountID: "123456789012"},
		Clients{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p := mustPrincipal(t, "arn:aws-cn:sts::111111111111:assumed-role/jenkins/release-1")
	for job, sessions := range map[string]bool{"open": false, "release": true} {
		raw, err := d.runQueuePolicy("b-q.fifo", &protocol.Request{Job: job}, p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Statement []policyStatement }
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatal(err)
		}
		var sids []string
		for _, s := range doc.Statement {
			sids = append(sids, s.Sid)
			if s.Sid == SidOnlyBrokerWritesOrManagesRun {
				if got := anyStrings(s.Condition["ArnNotLike"]["aws:PrincipalArn"]); !slices.Equal(got, []string{"arn:aws-cn:iam::123456789012:role/deploy-broker/b/*"}) {
					t.Errorf("%s: broker roles %v", job, got)
				}
			}
		}
		if slices.Contains(sids, SidOnlyAdmittedSessionsReadRun) != sessions {
			t.Errorf("job %s: statements %v", job, sids)
		}
	}
}

// The run queue's tags name the requester twice: its verified ARN, and what
// aws:PrincipalArn is for it (its role without a path, or its user), which
// the trigger role's ReadRunQueues compares with ${aws:PrincipalArn}.
func TestRequesterTags(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:sts::111111111111:assumed-role/github-deployer/GitHubActions": "arn:aws:iam::111111111111:role/github-deployer",
		"arn:aws:iam::111111111111:user/ops/alice":                             "arn:aws:iam::111111111111:user/ops/alice",
	} {
		tags := queueTags(&protocol.Request{RunID: "01JD5Q3ZC8W2V9T6R4N1M7K0HX", Job: "j"}, mustPrincipal(t, arn))
		if tags[protocol.TagRequester] != arn || tags[protocol.TagRequesterPrincipal] != want {
			t.Errorf("%s: tags %v, want %s = %s", arn, tags, protocol.TagRequesterPrincipal, want)
		}
	}
}
