package dispatcher

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// maxRunTime is the longest a run may legitimately keep its queue: the
// longest job timeout, plus the request's own validity, plus retention.
func (d *Dispatcher) maxRunTime() time.Duration {
	var longest time.Duration
	for _, j := range d.cfg.Jobs {
		longest = max(longest, j.Timeout.D())
	}
	return longest + d.cfg.Broker.MaxRequestAge.D() + d.cfg.Broker.QueueRetention.D()
}

// Sweep deletes the queues of runs that ended longer ago than the queue
// retention, and of runs older than the longest possible run (marking them
// abandoned in the ledger), so a crashed CI job leaks nothing.
func (d *Dispatcher) Sweep(ctx context.Context) error {
	prefix := d.cfg.Broker.Name + "-"
	now := d.now()
	var token *string
	deleted, kept := 0, 0
	for {
		out, err := d.sqs.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix), NextToken: token, MaxResults: aws.Int32(1000)})
		if err != nil {
			return fmt.Errorf("listing run queues: %w", err)
		}
		for _, url := range out.QueueUrls {
			name := url[strings.LastIndex(url, "/")+1:]
			runID := strings.TrimSuffix(strings.TrimPrefix(name, prefix), ".fifo")
			if protocol.ValidateRunID(runID) != nil || !strings.HasSuffix(name, ".fifo") {
				continue // not a run queue
			}
			del, abandoned, why, err := d.sweepDecision(ctx, runID, now)
			if err != nil {
				return err
			}
			if !del {
				kept++
				continue
			}
			if err := d.deleteQueue(ctx, url); err != nil {
				return err
			}
			if abandoned {
				if err := d.ledger.update(ctx, runID, map[string]string{"status": StatusAbandoned, "ended_at": now.UTC().Format(time.RFC3339Nano)}); err != nil {
					d.log.Warn("could not mark run abandoned", "run_id", runID, "error", err.Error())
				}
			}
			deleted++
			d.write(ctx, audit{RunID: runID, Decision: "swept", Reason: why})
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	d.log.Info("sweep done", "deleted", deleted, "kept", kept)
	return nil
}

func (d *Dispatcher) sweepDecision(ctx context.Context, runID string, now time.Time) (del, abandoned bool, why string, err error) {
	born, err := protocol.RunIDTime(runID)
	if err != nil {
		return false, false, "", nil
	}
	item, ok, err := d.ledger.get(ctx, runID)
	if err != nil {
		return false, false, "", err
	}
	retention := d.cfg.Broker.QueueRetention.D()
	switch {
	case ok && !item.EndedAt.IsZero() && now.Sub(item.EndedAt) > retention:
		return true, false, fmt.Sprintf("run ended %s ago, retention %s", now.Sub(item.EndedAt).Round(time.Second), retention), nil
	case now.Sub(born) > d.maxRunTime():
		return true, ok && item.EndedAt.IsZero(), fmt.Sprintf("run started %s ago, longer than any run may last (%s)", now.Sub(born).Round(time.Second), d.maxRunTime()), nil
	}
	return false, false, "", nil
}
