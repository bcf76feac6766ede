package localbroker

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Issue 22, finding 1, in local mode with two trusted identities (the
// example's jenkins-deployer and github-deployer roles, both allowed to run
// website): the first requests a run; the second must not be able to
// receive, delete or change the visibility of that run's records.
//
// What is proven, and how: moto evaluates no IAM policy, so the second
// identity's ReceiveMessage would succeed here. The test proves what the
// dispatcher wrote onto the queue the emulator holds, through the emulator's
// own GetQueueAttributes and ListQueueTags: a queue policy whose explicit
// Deny statements (principal "*") apply to the second identity's request
// context (aws:PrincipalArn, aws:userid as IAM sets them for a role session)
// for sqs:ReceiveMessage, DeleteMessage and ChangeMessageVisibility, and to
// none of the requester's; and the requester tag the stack's trigger role
// compares with ${aws:PrincipalArn}, which names the first role, not the
// second. The conditions are judged here with IAM's semantics of the only
// operators the policy uses (ArnNotLike, StringNotLike: '*' and '?'
// wildcards; Bool, Null); any other operator fails the test. IAM's own evaluation
// of the same documents is the iam-eval tool's.
func TestSecondPrincipalCannotReadAnothersRunQueue(t *testing.T) {
	ctx := context.Background()
	b, err := Start(ctx, Options{ConfigPath: "../../examples/broker.yaml", RunnerPath: "/bin/true", SweepInterval: -1,
		// The queue exists from the run request on; no runner is needed.
		FailToStart: map[string]string{"website": "CannotPullContainerError: not needed by this test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := b.Identity
	if first == nil || !strings.Contains(first.ARN, ":assumed-role/jenkins-deployer/") {
		t.Fatalf("local identity %+v, want a jenkins-deployer session", first)
	}
	out, err := sts.NewFromConfig(awsCfg).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::111111111111:role/github-deployer"), RoleSessionName: aws.String("other-team")})
	if err != nil {
		t.Fatal(err)
	}
	second := callerContext{principalARN: "arn:aws:iam::111111111111:role/github-deployer", userID: aws.ToString(out.AssumedRoleUser.AssumedRoleId)}
	firstCfg := awsCfg.Copy()
	firstCfg.Credentials = credentials.StaticCredentialsProvider{Value: first.Creds}
	who, err := sts.NewFromConfig(firstCfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	requester := callerContext{principalARN: "arn:aws:iam::111111111111:role/jenkins-deployer", userID: aws.ToString(who.UserId)}

	now := time.Now().UTC().Truncate(time.Millisecond)
	req := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: "website",
		Params: map[string]string{"version": "1.4.2"}, RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute),
		Requester: &protocol.Requester{CI: "local"}}
	if err := (identity.RequestSigner{Credentials: credentials.StaticCredentialsProvider{Value: first.Creds},
		Topic: b.TopicARN(), Endpoint: b.shim.URL}).Sign(ctx, req); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sns.NewFromConfig(awsCfg).Publish(ctx, &sns.PublishInput{TopicArn: aws.String(b.TopicARN()), Message: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}

	sq := sqs.NewFromConfig(awsCfg)
	name := protocol.QueueName(b.Config.Broker.Name, req.RunID)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; {
		if o, err := sq.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)}); err == nil {
			url = aws.ToString(o.QueueUrl)
		} else if time.Now().After(deadline) {
			t.Fatalf("the dispatcher made no run queue %s within 30s: %v", name, err)
		} else {
			time.Sleep(20 * time.Millisecond) // polling for the queue, not ordering
		}
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
	if err != nil {
		t.Fatal(err)
	}
	var policy struct{ Statement []queuePolicyStatement }
	if err := json.Unmarshal([]byte(attrs.Attributes["Policy"]), &policy); err != nil {
		t.Fatalf("queue policy %q: %v", attrs.Attributes["Policy"], err)
	}
	for _, action := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} {
		if sid := queueDenyFor(t, policy.Statement, action, second); sid == "" {
			t.Errorf("%s by the second principal (%s) on the first's run queue: no Deny applies", action, second.principalARN)
		} else {
			t.Logf("%s by %s: denied by %s", action, second.principalARN, sid)
		}
		if sid := queueDenyFor(t, policy.Statement, action, requester); sid != "" {
			t.Errorf("%s by the requester: denied by %s", action, sid)
		}
	}
	tags, err := sq.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: &url})
	if err != nil {
		t.Fatal(err)
	}
	if got := tags.Tags[protocol.TagRequesterPrincipal]; got != requester.principalARN {
		t.Errorf("tag %s = %q, want %s (the trigger role reads only queues whose tag is its ${aws:PrincipalArn})", protocol.TagRequesterPrincipal, got, requester.principalARN)
	}
}

type queuePolicyStatement struct {
	Sid       string
	Effect    string
	Principal any
	Action    any
	Condition map[string]map[string]any
}

// callerContext is what IAM knows of the caller that a run queue's policy
// looks at.
type callerContext struct{ principalARN, userID string }

// queueDenyFor returns the Sid of a Deny statement for everyone that applies to
// action by c over TLS, "" when none does.
func queueDenyFor(t *testing.T, statements []queuePolicyStatement, action string, c callerContext) string {
	t.Helper()
	for _, s := range statements {
		if s.Effect != "Deny" || s.Principal != "*" || !iamLikeAny(strings.Join(policyStrings(s.Action), "\n"), action) {
			continue
		}
		applies := true // the conditions of one statement are ANDed
		for op, kv := range s.Condition {
			for key, v := range kv {
				var value string
				switch key {
				case "aws:PrincipalArn":
					value = c.principalARN
				case "aws:userid":
					value = c.userID
				case "aws:SecureTransport":
					value = "true"
				default:
					t.Fatalf("statement %s: condition key %s is not judged by this test", s.Sid, key)
				}
				switch op {
				case "ArnNotLike", "StringNotLike": // true when the value matches none
					applies = applies && !iamLikeAny(strings.Join(policyStrings(v), "\n"), value)
				case "Bool":
					applies = applies && policyStrings(v)[0] == value
				case "Null": // "false": the key is present
					applies = applies && (value != "") == (policyStrings(v)[0] == "false")
				default:
					t.Fatalf("statement %s: operator %s is not judged by this test", s.Sid, op)
				}
			}
		}
		if applies {
			return s.Sid
		}
	}
	return ""
}

// iamLikeAny reports whether value matches one of the newline-separated
// IAM patterns ('*' any run of characters, '?' any one).
func iamLikeAny(patterns, value string) bool {
	for _, p := range strings.Split(patterns, "\n") {
		re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(p)) + "$"
		if regexp.MustCompile(re).MatchString(value) {
			return true
		}
	}
	return false
}

func policyStrings(v any) []string {
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
