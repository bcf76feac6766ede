package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Per-principal throttle (issue 13, floods). Every verified principal has
// one item in the run ledger, keyed ledger.PrincipalPrefix + its
// key (principalKey), that holds its open runs: a map run id → the epoch
// second at which the slot lapses by itself (slotExpiry). A run request
// that passed its checks takes a slot before its claim; when the principal
// already holds broker.max_open_runs_per_principal slots the run is
// rejected "throttled" and starts nothing.
//
// Slots are given back when a run ends (its rejection after the claim, the
// ECS STOPPED event), but nothing depends on that for correctness: before a
// request is refused, every slot the principal holds is checked against the
// run's own ledger item, and slots of runs that ended (or that can never be
// claimed any more) are dropped. A slot whose run never reports an end —
// a lost event, a crashed invocation — lapses at its expiry, after the
// longest the run could legitimately last. So no leak outlives one run's
// maximum life, and a principal is refused only when it really has that
// many runs open.
//
// The item is updated optimistically: every write is conditional on the
// version that was read, and bumps it; a slot given back bumps it too, so
// a write that raced with it is retried rather than resurrecting the slot.

// slotAttempts bounds the optimistic retries of one slot acquisition; a
// request that loses that many races returns an error and Lambda retries it.
const slotAttempts = 8

// principalKey is the throttle's key for a verified principal: the role of
// an assumed role (every session of a role shares its limit, so new session
// names do not buy new slots), or the IAM user.
func principalKey(p identity.Principal) string {
	switch {
	case p.Kind == identity.PrincipalAssumedRole && p.RoleARN != "":
		return p.RoleARN
	case p.UserARN != "":
		return p.UserARN
	}
	return p.ARN
}

// slotExpiry is when a slot taken now for job lapses on its own: after the
// run's task has certainly ended (the request's validity bounds when it may
// start; the job's timeout, the runner's grace and ECS's stop timeout when
// it ends) even if no end was ever reported.
func (d *Dispatcher) slotExpiry(job config.Job, now time.Time) time.Time {
	b := d.cfg.Broker
	return now.Add(b.MaxRequestAge.D() + b.ClockSkew.D() + job.Timeout.D() + d.cfg.Runner.Grace.D() + config.MaxStopTimeout)
}

// takeSlot takes a slot for the run request among its principal's open
// runs, or returns the throttled rejection when the principal has none
// left. A run that already holds its slot (a redelivery) keeps it.
//
// fresh reports that the slot was taken by this call (not held already).
func (d *Dispatcher) takeSlot(ctx context.Context, req *protocol.Request, p identity.Principal, job config.Job) (rej *rejection, fresh bool, err error) {
	key, limit := principalKey(p), d.cfg.Broker.MaxOpenRunsPerPrincipal
	for range slotAttempts {
		now := d.now()
		seen, err := d.ledger.GetOpenRuns(ctx, key)
		if err != nil {
			return nil, false, err
		}
		if _, ok := seen.Open[req.RunID]; ok {
			return nil, false, nil
		}
		open := make(map[string]int64, len(seen.Open)+1)
		for id, exp := range seen.Open {
			if exp > now.Unix() {
				open[id] = exp
			}
		}
		if len(open) >= limit {
			// Full: before refusing, check every slot against its run.
			if err := d.dropEnded(ctx, open, now); err != nil {
				return nil, false, err
			}
		}
		full := len(open) >= limit
		if !full {
			open[req.RunID] = d.slotExpiry(job, now).Unix()
		}
		if len(open) != len(seen.Open) || !full {
			err := d.ledger.PutOpenRuns(ctx, key, seen, open)
			if errors.Is(err, ledger.ErrConditionFailed) {
				if !d.pause(ctx, 20*time.Millisecond) {
					return nil, false, fmt.Errorf("the open runs of %s changed while taking a slot; will look again", key)
				}
				continue
			}
			if err != nil {
				return nil, false, err
			}
		}
		if full {
			return &rejection{protocol.RejectThrottled, fmt.Sprintf("%s has %d open runs (limit %d): %s; wait for one to end",
				key, len(open), limit, openList(open))}, false, nil
		}
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("the open runs of %s kept changing while taking a slot (%d attempts); will look again", key, slotAttempts)
}

// dropEnded removes from open the runs that no longer hold their slot: the
// run's ledger item says it ended, or it has none and its run id is too old
// for any claim to be made with it.
func (d *Dispatcher) dropEnded(ctx context.Context, open map[string]int64, now time.Time) error {
	for id := range open {
		it, ok, err := d.ledger.Get(ctx, id)
		if err != nil {
			return err
		}
		if ok && runOpen(it) {
			continue
		}
		if !ok {
			born, err := protocol.RunIDTime(id)
			if err == nil && !born.Before(now.Add(-d.cfg.Broker.MaxRequestAge.D()-2*d.cfg.Broker.ClockSkew.D())) {
				continue // its claim may be on its way
			}
		}
		delete(open, id)
	}
	return nil
}

// runOpen reports whether a run still holds its principal's slot.
func runOpen(it ledger.Item) bool {
	return it.EndedAt.IsZero() && (it.Status == ledger.Launching || it.Status == ledger.Accepted)
}

// openList names a few open runs for the throttled reason.
func openList(open map[string]int64) string {
	ids := make([]string, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > 3 {
		return "e.g. " + ids[0] + ", " + ids[1] + ", " + ids[2]
	}
	return fmt.Sprint(ids)
}

// freeRunSlot gives back the slot of a run that ended, if it took one (the
// ledger item's slot attribute names the principal key). Best effort: a
// slot not given back is dropped when its principal is next found full, or
// lapses at its expiry.
func (d *Dispatcher) freeRunSlot(ctx context.Context, it ledger.Item) {
	if it.Slot == "" {
		return
	}
	if err := d.ledger.FreeOpenRun(ctx, it.Slot, it.RunID); err != nil {
		d.log.Warn("could not give back the run's slot; it is dropped when its principal is next found full", "run_id", it.RunID, "error", err.Error())
	}
}

// dropSpuriousSlot gives back the slot a redelivered request took for a run
// id the ledger already had, unless that run holds it: a redelivery of a
// refused or ended run must not take a slot again.
func (d *Dispatcher) dropSpuriousSlot(ctx context.Context, runID, key string) {
	it, ok, err := d.ledger.Get(ctx, runID)
	if err == nil && ok && it.Slot == key && runOpen(it) {
		return
	}
	if err := d.ledger.FreeOpenRun(ctx, key, runID); err != nil {
		d.log.Warn("could not give back a redelivery's slot; it is dropped when its principal is next found full", "run_id", runID, "error", err.Error())
	}
}
