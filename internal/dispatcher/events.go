package dispatcher

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// EventsAPI is the part of the EventBridge client the dispatcher uses.
type EventsAPI interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// eventTimeout bounds the publication of one lifecycle event (the SDK's own
// retries included): an EventBridge outage slows a decision by at most this
// much and never fails it.
const eventTimeout = 3 * time.Second

// eventAttempts is how often a lifecycle event is offered to EventBridge
// when PutEvents answers but refuses the entry (FailedEntryCount).
const eventAttempts = 2

// MetricEventsFailed is the CloudWatch metric (embedded metric format, in
// the dispatcher's log) counting lifecycle events that were not published.
const MetricEventsFailed = "LifecycleEventsFailed"

// MetricNamespace is the namespace of the dispatcher's own metrics.
const MetricNamespace = "deploy-broker"

// emit publishes one lifecycle event on the default bus and logs it. It
// never fails and never blocks a run for longer than eventTimeout: a run's
// transitions matter more than their announcement. Events are delivered at
// least once (a retried invocation may publish a transition again);
// consumers dedupe on run_id + state.
func (d *Dispatcher) emit(ctx context.Context, ev protocol.RunEvent) {
	ev.Account, ev.AccountAlias, ev.Region = d.set.AccountID, d.cfg.Broker.AccountAlias, d.set.Region
	if ev.Time == "" {
		ev.Time = ledger.Stamp(d.now())
	}
	ev.Reason = oneLine(ev.Reason)
	detail, err := json.Marshal(ev)
	if err != nil { // cannot happen: strings, numbers
		d.log.Warn("could not encode a lifecycle event", "run_id", ev.RunID, "error", err.Error())
		return
	}
	d.log.LogAttrs(ctx, slog.LevelInfo, "lifecycle event", slog.String("event", "lifecycle"),
		slog.String("source", protocol.EventSource), slog.String("detail_type", protocol.EventDetailType),
		slog.Any("detail", json.RawMessage(detail)))
	if d.events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	entry := ebtypes.PutEventsRequestEntry{
		Source:       aws.String(protocol.EventSource),
		DetailType:   aws.String(protocol.EventDetailType),
		Detail:       aws.String(string(detail)),
		EventBusName: aws.String("default"),
	}
	if ev.TaskARN != "" {
		entry.Resources = []string{ev.TaskARN}
	}
	var why string
	for attempt := 1; attempt <= eventAttempts; attempt++ {
		out, err := d.events.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{entry}})
		switch {
		case err != nil:
			why = err.Error()
		case out.FailedEntryCount > 0 && len(out.Entries) > 0:
			why = aws.ToString(out.Entries[0].ErrorCode) + ": " + aws.ToString(out.Entries[0].ErrorMessage)
		case out.FailedEntryCount > 0:
			why = "PutEvents refused the entry"
		default:
			return
		}
		if err != nil || ctx.Err() != nil {
			break // the SDK already retried what could be retried
		}
	}
	// A log line in CloudWatch's embedded metric format: the metric appears
	// without a PutMetricData permission.
	d.log.LogAttrs(ctx, slog.LevelWarn, "lifecycle event not published", slog.String("run_id", ev.RunID),
		slog.String("state", ev.State), slog.String("error", oneLine(why)),
		slog.Any("_aws", map[string]any{
			"Timestamp": d.now().UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace": MetricNamespace, "Dimensions": [][]string{{}},
				"Metrics": []any{map[string]string{"Name": MetricEventsFailed, "Unit": "Count"}},
			}},
		}), slog.Int(MetricEventsFailed, 1))
}

// runEvent starts a lifecycle event from a ledger item.
func runEvent(state string, it ledger.Item) protocol.RunEvent {
	return protocol.RunEvent{RunID: it.RunID, Job: it.Job, State: state, Requester: it.RequestedBy, ClaimedRequester: it.Requester, TaskARN: it.TaskARN}
}

// requesterOf is who asked for a run: the verified principal, or what the
// client claimed for items written before requests carried proofs.
func requesterOf(it ledger.Item) string {
	if it.RequestedBy != "" {
		return it.RequestedBy
	}
	return it.Requester
}

// endedEvent is the event of a run's end: finished (with its outcome and
// exit code) or cancelled, with its duration from the claim.
func (d *Dispatcher) endedEvent(it ledger.Item, exitCode *int, stopCode string, end time.Time) protocol.RunEvent {
	ev := runEvent(protocol.EventFinished, it)
	ev.ExitCode, ev.StopCode, ev.LogExitCode = exitCode, stopCode, it.LogExitCode
	// The ledger's outcome (ledger.Outcome), the one the history commands
	// show; a cancel asked makes even an abandoned run cancelled here.
	switch outcome := ledger.Outcome(it); {
	case it.CancelRequested():
		ev.State = protocol.EventCancelled
	case outcome == ledger.OutcomeSucceeded:
		ev.Outcome = protocol.OutcomeSucceeded
	case outcome == ledger.OutcomeFailed:
		ev.Outcome = protocol.OutcomeFailed
	default: // stopped without the job's exit code, abandoned
		ev.Outcome = protocol.OutcomeLost
	}
	ev.DurationSeconds = durationSince(it.CreatedAt, end)
	return ev
}

func durationSince(from, to time.Time) *float64 {
	if from.IsZero() || to.Before(from) {
		return nil
	}
	s, _ := strconv.ParseFloat(strconv.FormatFloat(to.Sub(from).Seconds(), 'f', 3, 64), 64)
	return &s
}
