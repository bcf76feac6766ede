package dispatcher

import (
	"context"
	"log/slog"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Decisions written to the audit log.
const (
	DecisionAccepted  = "accepted"
	DecisionRejected  = "rejected"
	DecisionMalformed = "malformed"
	DecisionDuplicate = "duplicate"
	DecisionReplayed  = "replayed"
	DecisionCancelled = "cancelled"
	DecisionReleased  = "released"
	DecisionIgnored   = "ignored"
	DecisionSwept     = "swept"
	DecisionError     = "error" // handling failed and Lambda retries the event
)

// audit is one decision about one request.
type audit struct {
	RunID     string
	Kind      protocol.Kind
	Job       string
	Params    map[string]string // already redacted
	Requester *protocol.Requester
	Decision  string
	Reason    string
	TaskARN   string
}

// write emits the one structured audit line for a decision.
func (d *Dispatcher) write(ctx context.Context, a audit) {
	attrs := []slog.Attr{
		slog.String("audit", "decision"),
		slog.String("decision", a.Decision),
		slog.String("run_id", a.RunID),
	}
	if a.Kind != "" {
		attrs = append(attrs, slog.String("kind", string(a.Kind)))
	}
	if a.Job != "" {
		attrs = append(attrs, slog.String("job", a.Job))
	}
	if a.Params != nil {
		attrs = append(attrs, slog.Any("params", a.Params))
	}
	if a.Requester != nil {
		attrs = append(attrs, slog.Any("requester", a.Requester))
	}
	if a.Reason != "" {
		attrs = append(attrs, slog.String("reason", a.Reason))
	}
	if a.TaskARN != "" {
		attrs = append(attrs, slog.String("task_arn", a.TaskARN))
	}
	d.log.LogAttrs(ctx, slog.LevelInfo, "decision", attrs...)
}

// redactParams returns params with the values of secret parameters replaced.
func redactParams(params map[string]string, secret map[string]bool) map[string]string {
	if params == nil {
		return nil
	}
	out := make(map[string]string, len(params))
	for k, v := range params {
		if secret[k] {
			v = "***"
		}
		out[k] = v
	}
	return out
}
