package trigger

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// historyReader reads the run ledger's history index (runs, show).
type historyReader struct {
	db    historyAPI
	table string
}

// query runs one Query of the history index and names the permission when
// it is refused.
func (h historyReader) query(ctx context.Context, in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
	out, err := h.db.Query(ctx, in)
	if err == nil {
		return out, nil
	}
	if mfa := mfaInterrupted(err); mfa != nil {
		return nil, mfa.exit()
	}
	if isAccessDenied(err) {
		return nil, exitcode.Errorf(exitcode.Broker, "reading the run history needs dynamodb:Query on index %s of table %s (granted to the catalogue's viewers by the stack's reader role): %v", ledger.HistoryIndex, h.table, err)
	}
	if isNoCredentials(err) || isExpiredCredentials(err) || isInvalidCredentials(err) {
		return nil, exitcode.Errorf(exitcode.Broker, "no valid AWS credentials to read the run history: %v", err)
	}
	return nil, exitcode.Errorf(exitcode.Broker, "querying the run history (table %s, index %s): %v", h.table, ledger.HistoryIndex, err)
}

// list returns the runs between from and to (by run id time), newest first,
// that pass the filters, at most c.Limit of them. Filters apply on the
// server (a FilterExpression); the pages it reads are the key range's.
func (h historyReader) list(ctx context.Context, c *runsCLI, from, to time.Time) ([]historyRun, error) {
	in := ledger.RangeQuery(h.table, from, to, ledger.Filter{Job: c.Job, Key: c.Key, Requester: c.Requester})
	var runs []historyRun
	for {
		out, err := h.query(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, item := range out.Items {
			r := runFromItem(item)
			if c.Outcome != "" && r.Outcome != c.Outcome {
				continue
			}
			runs = append(runs, r)
			if len(runs) == c.Limit {
				return runs, nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return runs, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// get returns one run: a Query on the index's partition and run id.
func (h historyReader) get(ctx context.Context, runID string) (historyRun, bool, error) {
	out, err := h.query(ctx, ledger.RunQuery(h.table, runID))
	if err != nil || len(out.Items) == 0 {
		return historyRun{}, false, err
	}
	return runFromItem(out.Items[0]), true, nil
}

// runFromItem reads a ledger item (ledger.Decode) as the history commands
// show it. Parameters are as the dispatcher stored them: secret parameters
// are already redacted there.
func runFromItem(a map[string]dbtypes.AttributeValue) historyRun {
	it := ledger.Decode(a)
	r := historyRun{RunID: it.RunID, Job: it.Job, Requester: it.Requester, Status: string(it.Status),
		RequestedAt: stampOf(it.RequestedAt), CreatedAt: stampOf(it.CreatedAt), EndedAt: stampOf(it.EndedAt),
		TaskARN: it.TaskARN, StopCode: it.StopCode, StopReason: it.StopReason, RejectCode: it.RejectCode, Reason: it.Reason,
		CancelAsked: stampOf(it.CancelAsked), CancelledAt: stampOf(it.CancelledAt), ReleasedAt: stampOf(it.ReleasedAt),
		Key: it.IdempotencyKey, RequestedBy: it.RequestedBy, CancelledBy: it.CancelledBy,
		Approval: it.Approval, ApprovalBy: it.ApprovalBy, ApprovalAt: stampOf(it.ApprovalAt),
		ExitCode: it.ExitCode, LogExitCode: it.LogExitCode, Params: it.Params, Outputs: it.Outputs, Outcome: ledger.Outcome(it), Start: startOf(it), item: it}
	if !it.CreatedAt.IsZero() && !it.EndedAt.IsZero() && it.EndedAt.After(it.CreatedAt) {
		r.DurationMS = it.EndedAt.Sub(it.CreatedAt).Milliseconds()
	}
	return r
}

// stampOf is a ledger time as the ledger writes it, "" for none.
func stampOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ledger.Stamp(t)
}
