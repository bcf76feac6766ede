package trigger

import (
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Topic is a broker topic ARN taken apart. The ARN decides everything about
// where a run goes: the region, the target account (which owns the run
// queues) and the queue prefix (the topic's name).
type Topic struct {
	ARN       string
	Partition string
	Region    string
	Account   string
	Name      string
}

// parseTopicARN parses "arn:<partition>:sns:<region>:<account>:<name>".
func parseTopicARN(arn string) (Topic, error) {
	const hint = "expected arn:aws:sns:<region>:<account id>:<topic name>, e.g. arn:aws:sns:eu-west-1:123456789012:deploy-broker"
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sns" {
		return Topic{}, fmt.Errorf("topic ARN %q is not an SNS topic ARN: %s", short(arn, 120), hint)
	}
	t := Topic{ARN: arn, Partition: parts[1], Region: parts[3], Account: parts[4], Name: parts[5]}
	if t.Partition == "" || t.Region == "" {
		return Topic{}, fmt.Errorf("topic ARN %q has no partition or region: %s", short(arn, 120), hint)
	}
	if !validAccountID(t.Account) {
		return Topic{}, fmt.Errorf("topic ARN %q has account %q, not a 12-digit account id: %s", short(arn, 120), t.Account, hint)
	}
	if t.Name == "" || strings.HasSuffix(t.Name, ".fifo") {
		return Topic{}, fmt.Errorf("topic ARN %q does not name a standard topic: %s", short(arn, 120), hint)
	}
	if len(t.Name) > protocol.MaxQueuePrefixLength {
		return Topic{}, fmt.Errorf("topic name %q is longer than %d characters, so its run queues cannot be named", t.Name, protocol.MaxQueuePrefixLength)
	}
	return t, nil
}

func validAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
