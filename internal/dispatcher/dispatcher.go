package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// Dispatcher handles every event the broker's Lambda receives.
type Dispatcher struct {
	cfg    *config.Config
	set    Settings
	sqs    SQSAPI
	ecs    ECSAPI
	events EventsAPI // nil: lifecycle events are only logged
	ledger *ledger.Store
	view   brokerview.PutAPI // run pointers (spare.go)
	// verifier checks proofs of identity; verifierErr says why there is
	// none (a partition or endpoint it cannot serve): every request is then
	// left to Lambda's retries and the error logged.
	verifier    *identity.Verifier
	verifierErr error
	logs        LogsAPI // outputs.go
	log         *slog.Logger
	now         func() time.Time
	// taskDefs is the task definition revision each job runs (Settings).
	taskDefs map[string]string

	// Waits, tuned down by tests.
	callLimit  time.Duration // one AWS call at most (bounded.go)
	poll       time.Duration // between looks at a launch another invocation holds
	reserve    time.Duration // invocation time kept for bookkeeping after retries
	backoff    time.Duration // first wait after a transient RunTask failure
	maxBackoff time.Duration
}

// Option changes a Dispatcher built by New.
type Option func(*Dispatcher)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(d *Dispatcher) { d.now = now } }

// New returns a dispatcher for a validated configuration.
func New(cfg *config.Config, set Settings, c Clients, log *slog.Logger, opts ...Option) *Dispatcher {
	d := &Dispatcher{
		cfg: cfg, set: set, events: c.Events, log: log, now: time.Now, callLimit: defaultCallLimit,
		poll: 500 * time.Millisecond, reserve: 5 * time.Second, backoff: 500 * time.Millisecond, maxBackoff: 5 * time.Second,
	}
	// Every AWS call bounded below the invocation's remaining time (bounded.go).
	d.sqs, d.ecs = boundedSQS{d, c.SQS}, boundedECS{d, c.ECS}
	if c.Logs != nil {
		d.logs = boundedLogs{d, c.Logs}
	}
	d.ledger = ledger.New(boundedDynamo{d, c.Dynamo}, set.LedgerTable, cfg.Broker.LedgerRetention.D())
	d.view = boundedDynamo{d, c.Dynamo}
	d.taskDefs = map[string]string{}
	for job, td := range set.TaskDefinitions {
		if strings.Trim(td, "0123456789") == "" {
			td = cfg.TaskFamily(job) + ":" + td
		}
		d.taskDefs[job] = td
	}
	for _, o := range opts {
		o(d)
	}
	d.verifier, d.verifierErr = d.newVerifier()
	if d.verifierErr != nil {
		log.Error("cannot verify proofs of identity: every request will fail", "error", d.verifierErr.Error())
	}
	return d
}

// eventShape holds the fields that tell event sources apart.
type eventShape struct {
	Records []struct {
		EventSource string `json:"EventSource"`
	} `json:"Records"`
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
}

// Handle routes one Lambda event by its shape. It returns an error only when
// the event should be retried (an AWS call failed); anything it does not
// understand is logged and dropped.
func (d *Dispatcher) Handle(ctx context.Context, raw json.RawMessage) error {
	var shape eventShape
	if err := json.Unmarshal(raw, &shape); err != nil {
		d.log.Warn("ignoring event that is not a JSON object", "error", err.Error(), "bytes", len(raw))
		return nil
	}
	switch {
	case len(shape.Records) > 0 && shape.Records[0].EventSource == "aws:sns":
		var ev events.SNSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			d.log.Warn("ignoring malformed SNS event", "error", err.Error())
			return nil
		}
		return d.handleSNS(ctx, ev)
	case shape.Source == "aws.ecs" && shape.DetailType == "ECS Task State Change":
		var ev events.CloudWatchEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			d.log.Warn("ignoring malformed ECS event", "error", err.Error())
			return nil
		}
		return d.handleTaskEvent(ctx, ev)
	case shape.Source == "aws.events" && shape.DetailType == "Scheduled Event":
		return d.Sweep(ctx)
	default:
		d.log.Warn("ignoring event of unknown shape", "source", shape.Source, "detail_type", shape.DetailType, "records", len(shape.Records))
		return nil
	}
}

// handleSNS handles each record; a failure of one does not stop the others,
// and the first retryable error is returned so Lambda retries the event.
// Handling is idempotent, so a retry does no harm to records already done.
func (d *Dispatcher) handleSNS(ctx context.Context, ev events.SNSEvent) error {
	var first error
	for i, rec := range ev.Records {
		if rec.EventSource != "aws:sns" {
			d.log.Warn("ignoring non-SNS record", "index", i, "source", rec.EventSource)
			continue
		}
		if err := d.HandleRequest(ctx, []byte(rec.SNS.Message)); err != nil && first == nil {
			first = fmt.Errorf("SNS message %s: %w", rec.SNS.MessageID, err)
		}
	}
	return first
}
