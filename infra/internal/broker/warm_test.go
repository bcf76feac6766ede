package broker

import (
	"slices"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Issue 26, stack side: with `warm:` on a job the dispatcher may create,
// write to, tag and delete the broker's inboxes and knows its own role's
// ARN (each inbox's policy names it as the only writer); only the warm
// job's runner may take from an inbox, and only one tagged with its job
// (by name only under SqsAbacUnavailable); no other role of the stack is
// granted an inbox; every deployment role is denied every inbox action.
// A catalogue without `warm` grants nothing on inboxes (mainStack).
//
// What this proves: the policies as synthesized. IAM's evaluation of the
// tag condition and of each inbox's Denies (dispatcher.InboxPolicy) is the
// iam-eval tool's.
func TestWarmRunnersGrantsAndDenies(t *testing.T) {
	f := warmStack(t)
	s := f.app.Stack
	inboxes := stackArn("sqs", protocol.InboxNamePattern("warm-broker"))
	dispatcher := logicalID(f, s.Dispatcher.Role())
	manage := slices.IndexFunc(identityStatements(f, dispatcher), func(st statement) bool { return st.Sid == "ManageWarmInboxes" })
	if manage < 0 {
		t.Fatal("the dispatcher may not manage inboxes")
	}
	if st := identityStatements(f, dispatcher)[manage]; !actionsAre(st, "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SendMessage", "sqs:TagQueue") ||
		!slices.Equal(st.Resources, []string{inboxes}) {
		t.Errorf("ManageWarmInboxes is %s", st)
	}
	env := f.resources()[logicalID(f, s.Dispatcher.Function())].(map[string]interface{})["Properties"].(map[string]interface{})["Environment"].(map[string]interface{})["Variables"].(map[string]interface{})
	if got, want := render(env[protocol.EnvDispatcherRole]), getAtt(dispatcher, "Arn"); got != want {
		t.Errorf("%s = %s, want the dispatcher role's ARN %s", protocol.EnvDispatcherRole, got, want)
	}
	for _, j := range s.Catalogue.Jobs() {
		task := identityStatements(f, logicalID(f, j.TaskRole()))
		take := grant{Sid: "TakeAssignmentFromOwnInbox", Actions: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage"}, Resources: []string{inboxes},
			Condition: map[string]interface{}{"StringEquals": map[string]interface{}{"aws:ResourceTag/deploy-broker:job": j.Name()}}}
		var got []string
		for _, st := range inRegion(t, f, "eu-central-2", task) {
			if st.Effect != "Deny" && slices.Contains(st.Resources, inboxes) {
				got = append(got, st.Sid)
			}
		}
		switch j.Name() {
		case "hot":
			assertGrants(t, "hot's inbox grant", only(task, "TakeAssignmentFromOwnInbox"), []grant{take})
			if slices.Sort(got); !slices.Equal(got, []string{"TakeAssignmentFromOwnInbox", "TakeAssignmentWithoutAbac"}) {
				t.Errorf("hot's runner in eu-central-2 may take from inboxes by %v", got)
			}
		default:
			if len(got) > 0 {
				t.Errorf("job %s has no warm runners but its runner may take from inboxes by %v", j.Name(), got)
			}
		}
		deny := only(identityStatements(f, logicalID(f, j.DeploymentRole())), "NeverTouchWarmInboxes")
		assertGrants(t, j.Name()+"'s deployment role", deny, []grant{{Sid: "NeverTouchWarmInboxes", Effect: "Deny", Actions: []string{"sqs:*"}, Resources: []string{inboxes}}})
	}
	// No other role of the stack is granted an inbox.
	for _, st := range allStatements(f) {
		if st.Effect == "Deny" || !slices.Contains(st.Resources, inboxes) {
			continue
		}
		switch st.Sid {
		case "ManageWarmInboxes", "TakeAssignmentFromOwnInbox", "TakeAssignmentWithoutAbac":
		default:
			t.Errorf("%s grants an inbox", st)
		}
	}
	// And a catalogue without warm runners grants none.
	for _, st := range allStatements(mainStack(t)) {
		if st.Sid == "ManageWarmInboxes" || st.Sid == "TakeAssignmentFromOwnInbox" {
			t.Errorf("a stack without warm runners has %s", st)
		}
	}
}

func only(sts []statement, sid string) []statement {
	var out []statement
	for _, s := range sts {
		if s.Sid == sid {
			out = append(out, s)
		}
	}
	return out
}
