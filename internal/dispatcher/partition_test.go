package dispatcher

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The queue policy names the queue's ARN in the broker's own partition;
// with "arn:aws:" hard-coded it would never match in China or GovCloud.
func TestQueuePolicyUsesThePartition(t *testing.T) {
	for _, c := range []struct{ cluster, region, want string }{
		{"arn:aws:ecs:eu-west-1:123456789012:cluster/b", "eu-west-1", "arn:aws:sqs:eu-west-1:123456789012:b-q.fifo"},
		{"arn:aws-cn:ecs:cn-north-1:123456789012:cluster/b", "cn-north-1", "arn:aws-cn:sqs:cn-north-1:123456789012:b-q.fifo"},
		{"arn:aws-us-gov:ecs:us-gov-west-1:123456789012:cluster/b", "us-gov-west-1", "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:b-q.fifo"},
		// A cluster given by name (local mode): the region decides.
		{"b", "cn-northwest-1", "arn:aws-cn:sqs:cn-northwest-1:123456789012:b-q.fifo"},
		{"b", "us-gov-east-1", "arn:aws-us-gov:sqs:us-gov-east-1:123456789012:b-q.fifo"},
		{"b", "us-isob-east-1", "arn:aws-iso-b:sqs:us-isob-east-1:123456789012:b-q.fifo"},
		{"b", "us-iso-east-1", "arn:aws-iso:sqs:us-iso-east-1:123456789012:b-q.fifo"},
		{"b", "us-east-1", "arn:aws:sqs:us-east-1:123456789012:b-q.fifo"},
		{"b", "", "arn:aws:sqs::123456789012:b-q.fifo"},
	} {
		d := New(&config.Config{TrustedPrincipals: []string{"arn:aws:iam::111111111111:role/ci"}},
			Settings{Cluster: c.cluster, Region: c.region, AccountID: "123456789012"}, Clients{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		p, _ := identity.PrincipalFromARN("arn:aws:sts::111111111111:assumed-role/ci/s1")
		raw, err := d.runQueuePolicy("b-q.fifo", &protocol.Request{}, p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Statement []struct{ Resource string } }
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Statement) != 4 {
			t.Fatalf("policy %s", raw)
		}
		for _, st := range doc.Statement {
			if st.Resource != c.want {
				t.Errorf("cluster %q region %q: resource %s, want %s", c.cluster, c.region, st.Resource, c.want)
			}
		}
	}
}
