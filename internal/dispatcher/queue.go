package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Run queue attributes: FIFO (one message group per run keeps order), SSE,
// long polling by default, and messages kept long enough for a slow tailer.
const (
	queueRetentionSeconds = 4 * 24 * 3600
	queueVisibilitySecs   = 30
	queueWaitSeconds      = 20
)

// queueARN is the ARN of a run queue in the target account.
func (d *Dispatcher) queueARN(name string) string {
	return fmt.Sprintf("arn:%s:sqs:%s:%s:%s", partition(d.set.Cluster, d.set.Region), d.set.Region, d.set.AccountID, name)
}

// partition is the AWS partition the broker runs in: the cluster ARN's own
// when the cluster is given as an ARN (as the stack does), else the one the
// region belongs to. A queue policy whose resource names another partition
// never matches.
func partition(clusterARN, region string) string {
	if p, rest, ok := strings.Cut(strings.TrimPrefix(clusterARN, "arn:"), ":"); ok && strings.HasPrefix(clusterARN, "arn:") && p != "" && rest != "" {
		return p
	}
	for _, r := range []struct{ prefix, partition string }{
		{"cn-", "aws-cn"},
		{"us-gov-", "aws-us-gov"},
		{"us-iso-", "aws-iso"},
		{"us-isob-", "aws-iso-b"},
		{"eu-isoe-", "aws-iso-e"},
		{"us-isof-", "aws-iso-f"},
	} {
		if strings.HasPrefix(region, r.prefix) {
			return r.partition
		}
	}
	return "aws"
}

// createQueue creates the run's feedback queue, named after the run.
// CreateQueue with the same attributes (the run's policy among them)
// returns the existing queue, so a retry is harmless. A queue of that name
// with other attributes is never used: someone may have created it under
// the run's name (which follows from the run id, printed by deploy-trigger
// as soon as it publishes) to read the run or to hold records they forged.
// The dispatcher cannot read the existing queue's policy to tell (the run
// queue policy denies GetQueueAttributes to all but the requester), so the
// run gets a queue under a fresh name instead, which deploy-trigger finds
// through the run pointer. (A retry after an older dispatcher version made
// the queue with other attributes takes the same way.)
func (d *Dispatcher) createQueue(ctx context.Context, req *protocol.Request, p identity.Principal) (string, error) {
	url, err := d.createNamedQueue(ctx, protocol.QueueName(d.cfg.Broker.Name, req.RunID), req, p)
	if !errors.Is(err, errQueueNameTaken) {
		return url, err
	}
	d.log.Warn("a queue under the run's name exists with other attributes than the run's: the run gets a queue under a fresh name",
		"run_id", req.RunID)
	return d.createNamedQueue(ctx, protocol.QueueName(d.cfg.Broker.Name, protocol.NewRunID(d.now())), req, p)
}

// errQueueNameTaken: a queue of the name exists with other attributes.
var errQueueNameTaken = errors.New("a queue of that name exists with other attributes")

// createNamedQueue creates the run queue name with the run's policy and
// tags, or returns errQueueNameTaken.
func (d *Dispatcher) createNamedQueue(ctx context.Context, name string, req *protocol.Request, p identity.Principal) (string, error) {
	policy, err := d.runQueuePolicy(name, req, p)
	if err != nil {
		return "", err
	}
	out, err := d.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(name),
		Attributes: d.queueAttributes(policy),
		Tags:       queueTags(req, p),
	})
	var exists *sqstypes.QueueNameExists
	if errors.As(err, &exists) || isCode(err, "QueueAlreadyExists") {
		return "", fmt.Errorf("creating run queue %s: %w", name, errQueueNameTaken)
	}
	if err != nil {
		return "", fmt.Errorf("creating run queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// queueAttributes are a run queue's attributes.
func (d *Dispatcher) queueAttributes(policy string) map[string]string {
	return map[string]string{
		"FifoQueue":                     "true",
		"ContentBasedDeduplication":     "false",
		"SqsManagedSseEnabled":          "true",
		"MessageRetentionPeriod":        fmt.Sprint(queueRetentionSeconds),
		"VisibilityTimeout":             fmt.Sprint(queueVisibilitySecs),
		"ReceiveMessageWaitTimeSeconds": fmt.Sprint(queueWaitSeconds),
		"Policy":                        policy,
	}
}

// queueTags are a run queue's tags: who (verified) asked for what, and when.
func queueTags(req *protocol.Request, p identity.Principal) map[string]string {
	tags := map[string]string{
		protocol.TagRunID:     req.RunID,
		protocol.TagCreatedAt: protocol.RunIDTimeString(req.RunID),
	}
	if req.Job != "" {
		tags[protocol.TagJob] = tagValue(req.Job)
	}
	maps.Copy(tags, requesterTags(p))
	return tags
}

// tagValue keeps a tag value within SQS's limits (256 characters, a
// restricted character set).
func tagValue(v string) string {
	var b strings.Builder
	for _, r := range v {
		if b.Len() >= 250 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" _.:/=+-@", r):
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	return b.String()
}

// send writes one record to a run queue. The deduplication id is the
// record's source and sequence, so a retried invocation never shows twice.
func (d *Dispatcher) send(ctx context.Context, queueURL, runID string, rec protocol.Record) error {
	body, err := protocol.EncodeMessage([]protocol.Record{rec})
	if err != nil {
		return fmt.Errorf("encoding %s record: %w", rec.Type, err)
	}
	_, err = d.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:               aws.String(queueURL),
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(runID),
		MessageDeduplicationId: aws.String(fmt.Sprintf("%s-%d", rec.Src, rec.Seq)),
	})
	if err != nil {
		return fmt.Errorf("writing %s record to run queue: %w", rec.Type, err)
	}
	return nil
}

// queueURL finds a run's queue; ok is false when it does not exist.
func (d *Dispatcher) queueURL(ctx context.Context, runID string) (string, bool, error) {
	out, err := d.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(protocol.QueueName(d.cfg.Broker.Name, runID))})
	var nf *sqstypes.QueueDoesNotExist
	if errors.As(err, &nf) || isCode(err, "AWS.SimpleQueueService.NonExistentQueue") {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("looking up run queue of %s: %w", runID, err)
	}
	return aws.ToString(out.QueueUrl), true, nil
}

func (d *Dispatcher) deleteQueue(ctx context.Context, url string) error {
	_, err := d.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	var nf *sqstypes.QueueDoesNotExist
	if err != nil && !errors.As(err, &nf) && !isCode(err, "AWS.SimpleQueueService.NonExistentQueue") {
		return fmt.Errorf("deleting run queue %s: %w", url, err)
	}
	return nil
}

func (d *Dispatcher) record(typ protocol.RecordType, src protocol.Source, seq uint64) protocol.Record {
	return protocol.Record{Type: typ, Src: src, Seq: seq, Time: d.now().UTC().Truncate(time.Millisecond)}
}
