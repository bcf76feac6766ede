package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Run queues off the critical path (issue 26). A run's queue is made ahead
// of time, as a spare, for the next run of the same access: the requester
// and the session pattern that admitted it, which is all a run queue's
// policy depends on besides the queue's own ARN, and the job, which its
// tags name (queueAccess). The spare is created with
// the exact policy QueuePolicy writes for that access, so a run that takes
// it needs no CreateQueue, SetQueueAttributes or policy change between
// publish and its first line; a run whose access has no spare creates its
// queue as before (the cold path), and after the run is accepted the
// dispatcher makes the access's next spare.
//
// A spare queue is named protocol.QueueName(broker, X) with X a fresh id
// in the run id format, so every name pattern of the stack (the job guard,
// the dispatcher's grants, naming.RunQueueName) covers it. The ledger owns
// who has which queue (ledger/spares.go); the run's queue_url is
// authoritative, and the run pointer in the view table tells the trigger.

// SpareMaxIdle is how long a spare may wait for a run before the sweep
// deletes it.
const SpareMaxIdle = 7 * 24 * time.Hour

// queueAccess is one access's run queue policy, by queue ARN, and its key.
type queueAccess struct {
	p       identity.Principal
	pattern string
	job     string
	// key is a hash of what a queue made ahead of time must carry: the
	// policy (made for a placeholder ARN), the requester-principal tag
	// (the GitHub trigger role reads only queues whose tag is its own) and
	// the job (the job's runner may send only to queues tagged with its
	// job: the stack's SendFeedbackToOwnRunQueues).
	key string
}

// access is the queue access of a run of job by p.
func (d *Dispatcher) access(job string, p identity.Principal) (queueAccess, error) {
	a := queueAccess{p: p, pattern: controlPattern(p, d.cfg.Jobs[job].AllowedPrincipals), job: job}
	tmpl, err := a.policy(d, "arn:placeholder:sqs:::spare")
	if err != nil {
		return a, err
	}
	sum := sha256.Sum256([]byte(tmpl + "\n" + requesterTags(p)[protocol.TagRequesterPrincipal] + "\n" + tagValue(job)))
	a.key = hex.EncodeToString(sum[:16])
	return a, nil
}

// policy is the access's run queue policy for the queue queueARN.
func (a queueAccess) policy(d *Dispatcher, queueARN string) (string, error) {
	return QueuePolicy(RunQueueAccess{
		QueueARN:       queueARN,
		Requester:      a.p,
		SessionPattern: a.pattern,
		BrokerRoles:    d.brokerRoles(),
	})
}

// runQueue gives the run its queue and tells the trigger where it is: its
// access's spare, else the queue the ledger already names for the run (a
// retry, a run that waited), else a queue created now (createQueue). The
// run pointer is written before the queue is used, and only once the
// ledger confirms the queue is the run's.
func (d *Dispatcher) runQueue(ctx context.Context, req *protocol.Request, p identity.Principal) (string, error) {
	acc, err := d.access(req.Job, p)
	if err != nil {
		return "", err
	}
	id, url, ok, err := d.ledger.TakeSpare(ctx, acc.key)
	if err != nil {
		return "", err
	}
	retired := ""
	if ok {
		got, err := d.useSpare(ctx, req.RunID, acc, id, url)
		if err != nil || got != "" {
			return got, err
		}
		// The sweep retired it this very moment (it was idle for days):
		// nothing used it, and the run may name it already.
		d.log.Warn("a spare queue was retired as it was taken; creating the run's queue", "run_id", req.RunID, "queue_url", url)
		retired = url
	}
	// The cold path is slow anyway: a look at the ledger first keeps a
	// retried run from making a second queue.
	it, found, err := d.ledger.Get(ctx, req.RunID)
	switch {
	case err != nil:
		return "", err
	case found && it.QueueURL != "" && it.QueueURL != retired:
		url = it.QueueURL
	default:
		if url, err = d.createQueue(ctx, req, p); err != nil {
			return "", err
		}
	}
	had, err := d.ledger.SetQueue(ctx, req.RunID, url, retired)
	if err != nil {
		return "", err
	}
	return had, d.pointTo(ctx, req.RunID, had)
}

// useSpare makes the spare id (at url) the run's: it claims the queue in
// the ledger (the sweep's retirement checks the same item) and records it
// as the run's queue, the two at once (each is one round trip on the run's
// critical path), and only then, once both confirm the spare is the run's,
// writes the run pointer: a pointer never names a queue that is not the
// run's (a run that waited or a retried launch has a queue already, and
// the spare it took goes back to the pool for the next run of the same
// access, whose trigger a reader of this run's pointer would otherwise
// tail). It returns the run's queue, or "" when the sweep retired the
// spare first. The rare outcomes are settled after: the run had a queue
// already (the spare goes back and the pointer names the run's queue), or
// the claim failed.
func (d *Dispatcher) useSpare(ctx context.Context, runID string, acc queueAccess, id, url string) (string, error) {
	var claimErr, setErr error
	var had string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); claimErr = d.ledger.ClaimQueue(ctx, id, runID, d.now()) }()
	go func() { defer wg.Done(); had, setErr = d.ledger.SetQueue(ctx, runID, url, "") }()
	wg.Wait()
	switch {
	case errors.Is(claimErr, ledger.ErrConditionFailed):
		return "", nil
	case claimErr != nil:
		return "", claimErr
	case setErr != nil:
		return "", setErr
	case had != url:
		// The run had a queue already (it waited, or this is a retry).
		d.giveBack(ctx, acc, id, url, runID)
	}
	return had, d.pointTo(ctx, runID, had)
}

// pointTo writes the run pointer: the trigger's way to the run's queue.
func (d *Dispatcher) pointTo(ctx context.Context, runID, url string) error {
	return brokerview.PutRunPointer(ctx, d.view, d.viewTable(), runID, url, d.now().Add(d.maxRunTime()))
}

// viewTable is the broker's view table, where run pointers go.
func (d *Dispatcher) viewTable() string { return brokerview.TableName(d.cfg.Broker.Name) }

// giveBack returns a spare a run took but did not need; if its access has
// another spare by now, the queue is retired and deleted. Best effort: a
// spare lost here is deleted by the sweep after SpareMaxIdle.
func (d *Dispatcher) giveBack(ctx context.Context, acc queueAccess, id, url, runID string) {
	err := d.ledger.UnclaimQueue(ctx, id, runID)
	if err == nil {
		err = d.ledger.OfferSpare(ctx, acc.key, id, url)
		if errors.Is(err, ledger.ErrConditionFailed) {
			if err = d.ledger.RetireSpare(ctx, id, d.now()); err == nil {
				err = d.deleteQueue(ctx, url)
			}
		}
	}
	if err != nil {
		d.log.Warn("could not give back a spare queue; the sweep deletes it once idle", "run_id", runID, "queue_url", url, "error", oneLine(err.Error()))
	}
}

// replenish makes the next spare of the access of a run of job by the
// verified principal principalARN, if it has none: after the run is
// accepted, off its critical path. Best effort: without a spare the next
// run creates its queue.
func (d *Dispatcher) replenish(ctx context.Context, job, principalARN string) {
	if principalARN == "" || ctx.Err() != nil {
		return
	}
	p, err := identity.PrincipalFromARN(principalARN)
	if err == nil {
		err = d.makeSpare(ctx, job, p)
	}
	if err != nil {
		d.log.Warn("could not make a spare run queue; the next run creates its own", "job", job, "principal", principalARN, "error", oneLine(err.Error()))
	}
}

func (d *Dispatcher) makeSpare(ctx context.Context, job string, p identity.Principal) error {
	acc, err := d.access(job, p)
	if err != nil {
		return err
	}
	if has, err := d.ledger.HasSpare(ctx, acc.key); err != nil || has {
		return err
	}
	now := d.now()
	id := protocol.NewRunID(now)
	if err := d.ledger.RecordSpare(ctx, id, acc.key, now); err != nil {
		return err
	}
	name := protocol.QueueName(d.cfg.Broker.Name, id)
	policy, err := acc.policy(d, d.queueARN(name))
	if err != nil {
		return err
	}
	// The tags a run's queue has (queueTags) but the run's own id: who
	// requested (the requester tags), the job (the runner's grant is by
	// job tag), when it was made. The ledger ties it to its run.
	tags := map[string]string{protocol.TagCreatedAt: protocol.RunIDTimeString(id), protocol.TagJob: tagValue(job)}
	maps.Copy(tags, requesterTags(p))
	out, err := d.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: d.queueAttributes(policy), Tags: tags})
	if err != nil {
		return fmt.Errorf("creating spare queue %s: %w", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	if err := d.ledger.OfferSpare(ctx, acc.key, id, url); errors.Is(err, ledger.ErrConditionFailed) {
		// Another run of the access made one first.
		if err := d.ledger.RetireSpare(ctx, id, now); err != nil {
			return err
		}
		return d.deleteQueue(ctx, url)
	} else if err != nil {
		return err
	}
	return nil
}

// sweepQueue decides about one queue of the broker named with id: a
// spare-named queue is judged by the run that took it, or, while a spare,
// by how long it has waited; any other by its own run (sweepOne).
func (d *Dispatcher) sweepQueue(ctx context.Context, url, id string, now time.Time) (bool, error) {
	rec, ok, err := d.ledger.QueueOwner(ctx, id)
	switch {
	case err != nil:
		return false, err
	case !ok:
		return d.sweepOne(ctx, url, id, now)
	case rec.TakenBy != "":
		return d.sweepOne(ctx, url, rec.TakenBy, now)
	case !rec.Retired && now.Sub(rec.CreatedAt) <= SpareMaxIdle:
		return false, nil
	}
	if !rec.Retired {
		err := d.ledger.RetireSpare(ctx, id, now)
		if errors.Is(err, ledger.ErrConditionFailed) {
			return false, nil // a run took it this very moment
		}
		if err != nil {
			return false, err
		}
	}
	if err := d.deleteQueue(ctx, url); err != nil {
		return false, err
	}
	d.write(ctx, audit{Decision: DecisionSwept, Reason: fmt.Sprintf("spare run queue %s unused for %s (longest %s)",
		url[strings.LastIndex(url, "/")+1:], now.Sub(rec.CreatedAt).Round(time.Second), SpareMaxIdle)})
	return true, nil
}
