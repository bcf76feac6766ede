package dispatcher_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// An inbox's policy is Denies only: every write or management action to
// every principal but the dispatcher's role, every read to every principal
// outside the broker's roles, anything without TLS. (IAM's evaluation of
// it is iamcheck's: infra/internal/iamcheck, iam.yaml's inbox entries.)
func TestInboxPolicyIsDeniesOnly(t *testing.T) {
	const q = "arn:aws:sqs:eu-west-1:111122223333:b-warm-01JD5Q3ZC8W2V9T6R4N1M7K0HX"
	const disp = "arn:aws:iam::111122223333:role/deploy-broker/b/Dispatcher"
	const roles = "arn:aws:iam::111122223333:role/deploy-broker/b/*"
	doc, err := dispatcher.InboxPolicy(dispatcher.InboxAccess{QueueARN: q, Dispatcher: disp, BrokerRoles: roles})
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Statement []struct {
			Sid, Effect string
			Principal   any
			Action      any
			Resource    string
			Condition   map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		actions []string
		cond    string
	}{
		dispatcher.SidOnlyDispatcherWritesInbox: {protocol.InboxWriteActions, disp},
		dispatcher.SidOnlyRunnersReadInbox:      {protocol.InboxReadActions, roles},
	}
	seen := 0
	for _, s := range p.Statement {
		if s.Effect != "Deny" || s.Principal != "*" || s.Resource != q {
			t.Errorf("statement %s is not a Deny to everyone on the inbox: %+v", s.Sid, s)
		}
		if s.Sid == dispatcher.SidDenyInsecureTransport {
			seen++
			continue
		}
		w, ok := want[s.Sid]
		if !ok {
			t.Errorf("unexpected statement %s", s.Sid)
			continue
		}
		seen++
		var acts []string
		for _, a := range s.Action.([]any) {
			acts = append(acts, a.(string))
		}
		if !slices.Equal(acts, w.actions) || s.Condition["ArnNotLike"]["aws:PrincipalArn"] != w.cond {
			t.Errorf("%s: actions %v condition %v, want %v unless %s", s.Sid, acts, s.Condition, w.actions, w.cond)
		}
	}
	if seen != 3 {
		t.Errorf("%d of the 3 statements", seen)
	}
	if _, err := dispatcher.InboxPolicy(dispatcher.InboxAccess{QueueARN: q}); err == nil {
		t.Error("a policy without role patterns was made")
	}
}
