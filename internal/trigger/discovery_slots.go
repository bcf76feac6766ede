package trigger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// slotWindow is how far back a dry run looks for runs that hold or wait for
// a concurrency slot (the default of `runs --since`).
const slotWindow = 7 * 24 * time.Hour

// slotNote says, for a dry run of a concurrency-limited job, who holds its
// slots now: read from the run history when the caller may read it (a
// viewer, through the reader role the view names, or its own permissions),
// else that it could not be read. "" for a job without a limit.
func (a *app) slotNote(ctx context.Context, c clients, v *brokerview.View, job string, p identity.Principal) string {
	j := v.Jobs[job]
	if j.Concurrency == 0 {
		return ""
	}
	cfg := c.cfg
	if v.ReaderRoleARN != "" && v.Viewer(p) {
		cfg = assumeReader(cfg, v.ReaderRoleARN, "", requesterFromEnv(a.getenv, a.hostname))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	h := historyReader{db: dynamodb.NewFromConfig(cfg), table: v.LedgerTable}
	now := a.now()
	var holders, waiting []historyRun
	for _, name := range v.JobNames() {
		if name != job && (j.ConcurrencyGroup == "" || v.Jobs[name].ConcurrencyGroup != j.ConcurrencyGroup) {
			continue
		}
		runs, err := h.list(ctx, &runsCLI{Job: name}, now.Add(-slotWindow), now)
		if err != nil {
			return "who holds its slots now was not read: the run history is the viewers' (" + short(err.Error(), 160) + ")"
		}
		for _, r := range runs {
			switch r.Outcome {
			case ledger.OutcomeRunning:
				holders = append(holders, r)
			case ledger.OutcomeQueued, ledger.OutcomeAwaitingApproval:
				waiting = append(waiting, r)
			}
		}
	}
	return slotVerdict(j.Concurrency, holders, waiting)
}

// slotVerdict is what a new run would meet: a free slot, or the runs it
// would wait behind.
func slotVerdict(limit int, holders, waiting []historyRun) string {
	if len(holders) < limit && len(waiting) == 0 {
		return fmt.Sprintf("would find a slot free now (%d of %d held)", len(holders), limit)
	}
	var ids []string
	for _, r := range append(append([]historyRun{}, holders...), waiting...) {
		ids = append(ids, r.RunID+" ("+r.Job+", "+r.Outcome+")")
	}
	return "would wait behind run " + strings.Join(ids, ", ") + " as things stand"
}
