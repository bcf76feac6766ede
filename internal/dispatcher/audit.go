package dispatcher

import (
	"context"
	"log/slog"

	"github.com/deploy-broker/deploy-broker/internal/config"
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
	// DecisionExitDisagrees: the run's task stopped and the run log's exit
	// record gives another exit code than ECS's container exit code; the
	// ledger keeps ECS's (issue 22).
	DecisionExitDisagrees = "exit-code-disagrees"
)

// audit is one decision about one request.
type audit struct {
	RunID     string
	Kind      protocol.Kind
	Job       string
	Params    map[string]string   // already redacted
	Requester *protocol.Requester // claimed by the client
	Principal string              // verified: the proof's ARN
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
	if a.Principal != "" {
		attrs = append(attrs, slog.String("principal", a.Principal))
	}
	if a.Requester != nil {
		attrs = append(attrs, slog.Any("claimed_requester", a.Requester))
	}
	if a.Reason != "" {
		attrs = append(attrs, slog.String("reason", a.Reason))
	}
	if a.TaskARN != "" {
		attrs = append(attrs, slog.String("task_arn", a.TaskARN))
	}
	d.log.LogAttrs(ctx, slog.LevelInfo, "decision", attrs...)
}

// redactParams returns params as they may be stored in the ledger and the
// audit log. Only the values of parameters that the job declares and does
// not mark secret are kept; every other value is "***": secret parameters,
// parameters the job does not declare (a misspelt "tokne" is as secret as
// "token") and all parameters of a job that is not in the catalogue (known
// is false). The names are kept: they are checked, and say what was asked.
func redactParams(params map[string]string, job config.Job, known bool) map[string]string {
	if params == nil {
		return nil
	}
	out := make(map[string]string, len(params))
	for k, v := range params {
		if p, declared := job.Params[k]; !known || !declared || p.Secret {
			v = redacted
		}
		out[k] = v
	}
	return out
}

// redacted replaces a value that must not be stored or logged.
const redacted = "***"
