package config

import "testing"

// Security review of issue 26: the run pointers live in the broker's view
// table ("<broker>-view", item run#<id>), whose only protection against a
// job's deployment role is the table policy's Deny of item writes
// (OnlyTheBrokerWritesTheView). Nothing denies a job the table's policy
// itself (dynamodb:DeleteResourcePolicy, PutResourcePolicy), nor the table
// (DeleteTable, UpdateTable): the job guard (infra jobguard.go) names the
// run ledger only, and so does this catalogue check. A job granted those
// removes the Deny, then writes forged run pointers or a forged published
// view. As for the ledger, the catalogue must refuse a job policy that
// names the view table; likewise a grant on the warm runners' inboxes
// ("<broker>-warm-*", which the run queues' sample does not cover). What
// is proven: the catalogue check (pure logic); the missing guard statement
// is judged from the stack's policies (see the review report).
func TestAttackJobPolicyMayNotGrantTheViewTableOrTheInboxes(t *testing.T) {
	const cmd = `command: [/bin/deploy], `
	for policy, want := range map[string]string{
		`{actions: ["dynamodb:DeleteResourcePolicy"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/b-view"]}`: `b-view`,
		`{actions: ["dynamodb:PutItem"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/b-view"]}`:              `b-view`,
		`{actions: ["dynamodb:DeleteTable"], resources: ["arn:aws:dynamodb:eu-west-1:123456789012:table/b-v*"]}`:            `b-v*`,
		`{actions: ["sqs:ReceiveMessage"], resources: ["arn:aws:sqs:eu-west-1:123456789012:b-warm-*"]}`:                     `b-warm-*`,
	} {
		wantConfigError(t, cmd+"policy: ["+policy+"]", want)
	}
}
