package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Issue 22, finding 1, stack side: no policy of the stack lets one trusted
// principal read another's run queue. Before, the GitHub trigger role's
// ReadRunQueues granted receive, delete and visibility changes on every run
// queue of the broker, and, being in the target account, its identity
// policy alone let it in. Now every statement of the template that allows
// reading run queues is bound to the queue's requester tag
// (aws:ResourceTag/deploy-broker:requester-principal = ${aws:PrincipalArn}),
// except the fallback of the regions without SQS ABAC, which exists only
// under the stack's SqsAbacUnavailable condition (there, and everywhere,
// the run queue's own policy denies every principal but the requester:
// dispatcher.QueuePolicy, OnlyRequesterReadsRun).
//
// What this proves: the policies as synthesized. IAM's evaluation of the
// tag condition and of the queue policy's Deny is AWS's (iam-eval tool).
func TestOnlyTheRequesterTagOpensARunQueueToAStackRole(t *testing.T) {
	reads := []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
	for _, f := range []*fixture{mainStack(t), otherStack(t)} {
		queues := runQueueArn(f.app.Config.Broker.Name)
		bound := render(map[string]interface{}{"StringEquals": map[string]interface{}{
			"aws:ResourceTag/" + protocol.TagRequesterPrincipal: "${aws:PrincipalArn}"}})
		readers := 0
		for _, s := range allStatements(f) {
			if s.Effect == "Deny" || !slices.ContainsFunc(s.Resources, func(r string) bool { return r == queues || r == "*" || r == stackArn("sqs", "*") }) {
				continue
			}
			if !slices.ContainsFunc(s.Actions, func(a string) bool {
				return a == "*" || a == "sqs:*" || slices.ContainsFunc(reads, func(r string) bool {
					return a == r || (strings.HasSuffix(a, "*") && strings.HasPrefix(r, strings.TrimSuffix(a, "*")))
				})
			}) {
				continue
			}
			readers++
			switch {
			case render(s.Condition) == bound && s.CfnCondition == "":
			case s.CfnCondition == SqsAbacUnavailableCondition && len(s.Condition) == 0:
				for _, r := range []string{"eu-west-1", "us-east-1"} {
					if regionCondition(t, f, s.CfnCondition, r) {
						t.Errorf("%s: the fallback without ABAC applies in %s", s, r)
					}
				}
			default:
				t.Errorf("%s reads run queues not bound to their requester tag", s)
			}
		}
		if f.app.Stack.TriggerRole != nil && readers != 2 {
			t.Errorf("%d statements read run queues, want the trigger role's two (tag-bound, and the fallback without ABAC)", readers)
		}
	}
}

// The job roles' NeverTouchTheDispatcher names the dispatcher function by
// ARN: the function has that name.
func TestTheDispatcherFunctionHasTheNameTheJobsAreDenied(t *testing.T) {
	f := mainStack(t)
	fn := f.resources()[logicalID(f, f.app.Stack.Dispatcher.Function())].(map[string]interface{})["Properties"].(map[string]interface{})
	if got := fn["FunctionName"]; got != DispatcherFunctionName("test-broker") || got != "test-broker-dispatcher" {
		t.Errorf("dispatcher function name %v, want test-broker-dispatcher", got)
	}
}
