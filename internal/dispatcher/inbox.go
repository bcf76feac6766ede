package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// A warm slot's inbox: a standard queue (one message ever) named
// protocol.InboxName, tagged with the job, whose policy lets only the
// dispatcher write or manage it and only the broker's own roles read it.

// Statement ids of an inbox's policy (stable: the docs, the trust tables
// and the IAM evaluation name them).
const (
	SidOnlyDispatcherWritesInbox = "OnlyDispatcherWritesInbox"
	SidOnlyRunnersReadInbox      = "OnlyRunnersReadInbox"
)

const (
	inboxRetentionSeconds = 4 * 24 * 3600
	inboxWaitSeconds      = 20
	// inboxVisibilitySecs hides a received assignment from a second
	// receive of the same runner while it deletes it.
	inboxVisibilitySecs = 60
)

// InboxAccess is who may use one inbox: what InboxPolicy writes.
type InboxAccess struct {
	QueueARN string
	// Dispatcher is the dispatcher role's ARN pattern: the only principal
	// that may write or manage the inbox.
	Dispatcher string
	// BrokerRoles is the pattern of the broker's own roles (config.RolePath).
	BrokerRoles string
}

// InboxPolicy is an inbox's resource policy: Denies only, so that whatever
// identity policies exist in the account, nobody but the dispatcher writes
// an assignment and nobody outside the broker's roles reads one (which
// carries the run's secret parameters); and no access without TLS.
func InboxPolicy(a InboxAccess) (string, error) {
	if a.QueueARN == "" || a.Dispatcher == "" || a.BrokerRoles == "" {
		return "", errors.New("inbox policy: no queue ARN or role pattern")
	}
	deny := func(sid string, actions []string, pattern string) map[string]any {
		return map[string]any{"Sid": sid, "Effect": "Deny", "Principal": "*", "Action": actions, "Resource": a.QueueARN,
			"Condition": map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": pattern}}}
	}
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{
		deny(SidOnlyDispatcherWritesInbox, protocol.InboxWriteActions, a.Dispatcher),
		deny(SidOnlyRunnersReadInbox, protocol.InboxReadActions, a.BrokerRoles),
		map[string]any{"Sid": SidDenyInsecureTransport, "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": a.QueueARN,
			"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}}},
	}})
	return string(b), err
}

// brokerRoles is the ARN pattern of the broker's own roles.
func (d *Dispatcher) brokerRoles() string {
	return "arn:" + partition(d.set.Cluster, d.set.Region) + ":iam::" + d.set.AccountID + ":role" + config.RolePath(d.cfg.Broker.Name) + "*"
}

// createInbox creates slot id's inbox.
func (d *Dispatcher) createInbox(ctx context.Context, job, id string) (string, error) {
	name := protocol.InboxName(d.cfg.Broker.Name, id)
	dispatcher := d.set.DispatcherRole
	if dispatcher == "" {
		dispatcher = d.brokerRoles() // a stack that does not name the role: the broker's roles
	}
	policy, err := InboxPolicy(InboxAccess{QueueARN: d.queueARN(name), Dispatcher: dispatcher, BrokerRoles: d.brokerRoles()})
	if err != nil {
		return "", err
	}
	out, err := d.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			"SqsManagedSseEnabled":          "true",
			"MessageRetentionPeriod":        fmt.Sprint(inboxRetentionSeconds),
			"VisibilityTimeout":             fmt.Sprint(inboxVisibilitySecs),
			"ReceiveMessageWaitTimeSeconds": fmt.Sprint(inboxWaitSeconds),
			"Policy":                        policy,
		},
		Tags: map[string]string{protocol.TagJob: tagValue(job), protocol.TagWarmSlot: id},
	})
	if err != nil {
		return "", fmt.Errorf("creating inbox %s of a warm runner of %s: %w", name, job, err)
	}
	return aws.ToString(out.QueueUrl), nil
}
