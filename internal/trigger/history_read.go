package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// historyReader reads the run ledger's history index (runs, show).
type historyReader struct {
	db    historyAPI
	table string
}

// runIDBound is the smallest (or, with high, the largest) run id of time t.
func runIDBound(t time.Time, high bool) string {
	fill := byte(0)
	if high {
		fill = 0xff
	}
	return ulid.MustNew(ulid.Timestamp(t), bytes.NewReader(bytes.Repeat([]byte{fill}, 10))).String()
}

// query runs one Query of the history index and names the permission when
// it is refused.
func (h historyReader) query(ctx context.Context, in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
	in.TableName, in.IndexName = aws.String(h.table), aws.String(protocol.LedgerHistoryIndex)
	out, err := h.db.Query(ctx, in)
	if err == nil {
		return out, nil
	}
	if mfa := mfaInterrupted(err); mfa != nil {
		return nil, mfa.exit()
	}
	if isAccessDenied(err) {
		return nil, exitcode.Errorf(exitcode.Broker, "reading the run history needs dynamodb:Query on index %s of table %s (granted to the catalogue's viewers by the stack's reader role): %v", protocol.LedgerHistoryIndex, h.table, err)
	}
	if isNoCredentials(err) || isExpiredCredentials(err) || isInvalidCredentials(err) {
		return nil, exitcode.Errorf(exitcode.Broker, "no valid AWS credentials to read the run history: %v", err)
	}
	return nil, exitcode.Errorf(exitcode.Broker, "querying the run history (table %s, index %s): %v", h.table, protocol.LedgerHistoryIndex, err)
}

// list returns the runs between from and to (by run id time), newest first,
// that pass the filters, at most c.Limit of them. Filters apply on the
// server (a FilterExpression); the pages it reads are the key range's.
func (h historyReader) list(ctx context.Context, c *runsCLI, from, to time.Time) ([]historyRun, error) {
	names := map[string]string{"#h": protocol.LedgerHistory, "#id": protocol.LedgerRunID}
	values := map[string]dbtypes.AttributeValue{
		":h":  &dbtypes.AttributeValueMemberS{Value: protocol.LedgerHistoryValue},
		":lo": &dbtypes.AttributeValueMemberS{Value: runIDBound(from, false)},
		":hi": &dbtypes.AttributeValueMemberS{Value: runIDBound(to, true)},
	}
	var filters []string
	if c.Job != "" {
		names["#job"] = protocol.LedgerJob
		values[":job"] = &dbtypes.AttributeValueMemberS{Value: c.Job}
		filters = append(filters, "#job = :job")
	}
	if c.Key != "" {
		names["#key"] = protocol.LedgerIdempotencyKey
		values[":key"] = &dbtypes.AttributeValueMemberS{Value: c.Key}
		filters = append(filters, "#key = :key")
	}
	if c.Requester != "" {
		names["#req"], names["#rby"] = protocol.LedgerRequester, protocol.LedgerRequestedBy
		values[":req"] = &dbtypes.AttributeValueMemberS{Value: c.Requester}
		filters = append(filters, "(contains(#rby, :req) OR contains(#req, :req))")
	}
	in := &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("#h = :h AND #id BETWEEN :lo AND :hi"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
	}
	if len(filters) > 0 {
		in.FilterExpression = aws.String(strings.Join(filters, " AND "))
	}
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
	out, err := h.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:   aws.String("#h = :h AND #id = :id"),
		ExpressionAttributeNames: map[string]string{"#h": protocol.LedgerHistory, "#id": protocol.LedgerRunID},
		ExpressionAttributeValues: map[string]dbtypes.AttributeValue{
			":h":  &dbtypes.AttributeValueMemberS{Value: protocol.LedgerHistoryValue},
			":id": &dbtypes.AttributeValueMemberS{Value: runID},
		},
	})
	if err != nil || len(out.Items) == 0 {
		return historyRun{}, false, err
	}
	return runFromItem(out.Items[0]), true, nil
}

// runFromItem reads a ledger item. Parameters are as the dispatcher stored
// them: secret parameters are already redacted there.
func runFromItem(a map[string]dbtypes.AttributeValue) historyRun {
	str := func(k string) string {
		if v, ok := a[k].(*dbtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	r := historyRun{RunID: str(protocol.LedgerRunID), Job: str(protocol.LedgerJob), Requester: str(protocol.LedgerRequester),
		Status: str(protocol.LedgerStatus), RequestedAt: str(protocol.LedgerRequestedAt), CreatedAt: str(protocol.LedgerCreatedAt),
		EndedAt: str(protocol.LedgerEndedAt), TaskARN: str(protocol.LedgerTaskARN), StopCode: str(protocol.LedgerStopCode),
		StopReason: str(protocol.LedgerStopReason), RejectCode: str(protocol.LedgerRejectCode), Reason: str(protocol.LedgerReason),
		CancelAsked: str(protocol.LedgerCancelAsked), CancelledAt: str(protocol.LedgerCancelledAt), ReleasedAt: str(protocol.LedgerReleasedAt),
		Key: str(protocol.LedgerIdempotencyKey), RequestedBy: str(protocol.LedgerRequestedBy), CancelledBy: str(protocol.LedgerCancelledBy)}
	if v := str(protocol.LedgerExitCode); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			r.ExitCode = &n
		}
	}
	if m, ok := a[protocol.LedgerParams].(*dbtypes.AttributeValueMemberM); ok {
		r.Params = map[string]string{}
		for k, v := range m.Value {
			if sv, ok := v.(*dbtypes.AttributeValueMemberS); ok {
				r.Params[k] = sv.Value
			}
		}
	}
	if v := str(protocol.LedgerOutputs); v != "" {
		_ = json.Unmarshal([]byte(v), &r.Outputs) // the dispatcher's copy from the run log
	}
	start, _ := time.Parse(time.RFC3339Nano, r.CreatedAt)
	end, _ := time.Parse(time.RFC3339Nano, r.EndedAt)
	if !start.IsZero() && !end.IsZero() && end.After(start) {
		r.DurationMS = end.Sub(start).Milliseconds()
	}
	r.Outcome = historyOutcome(r)
	return r
}

// historyOutcome is one word for how the run ended, from the ledger: the
// task's exit code decides between succeeded and failed.
func historyOutcome(r historyRun) string {
	switch r.Status {
	case "launching", "accepted":
		return "running"
	case "rejected", "cancelled", "abandoned":
		return r.Status
	case "stopped":
		switch {
		case r.CancelAsked != "" || r.CancelledAt != "":
			return "cancelled"
		case r.ExitCode != nil && *r.ExitCode == 0:
			return "succeeded"
		case r.ExitCode != nil:
			return "failed"
		}
		return "stopped"
	}
	return r.Status
}
