package dispatcher

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/identity"
)

// The run queue's policy grants reading to the verified requester only:
// its role (any session, any path) or its user, in its own account; never
// a list of every trusted principal.
func TestQueuePolicyGrantsTheRequesterOnly(t *testing.T) {
	const queue = "arn:aws:sqs:eu-west-1:123456789012:b-01JD5Q3ZC8W2V9T6R4N1M7K0HX.fifo"
	type stmt struct {
		Sid       string
		Effect    string
		Principal any
		Action    any
		Resource  string
		Condition map[string]map[string]any
	}
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
		p, err := identity.PrincipalFromARN(c.arn)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := QueuePolicy(queue, p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Statement []stmt }
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Statement) != 2 {
			t.Fatalf("%s: policy %s", c.arn, raw)
		}
		allow, deny := doc.Statement[0], doc.Statement[1]
		if allow.Effect != "Allow" || !reflect.DeepEqual(allow.Principal, map[string]any{"AWS": c.root}) || allow.Resource != queue {
			t.Errorf("%s: allow statement %+v", c.arn, allow)
		}
		if got := allow.Condition["ArnLike"]["aws:PrincipalArn"]; !reflect.DeepEqual(got, c.want) || len(allow.Condition) != 1 {
			t.Errorf("%s: condition %v, want ArnLike aws:PrincipalArn %v", c.arn, allow.Condition, c.want)
		}
		if deny.Effect != "Deny" || deny.Principal != "*" || deny.Condition["Bool"]["aws:SecureTransport"] != "false" {
			t.Errorf("%s: deny statement %+v", c.arn, deny)
		}
	}
	if _, err := QueuePolicy(queue, identity.Principal{}); err == nil {
		t.Error("a policy without a principal was made")
	}
}
