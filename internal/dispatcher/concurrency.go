package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// Concurrency (issue 16). A job with `concurrency: N` takes one of N slots
// of its group (the job's own, or its concurrency_group) before RunTask.
// The slots are one item of the run ledger, key "slot#<group>":
//
//	holders  M  run id → since: the runs that hold a slot
//	waiting  L  run ids waiting for a slot, oldest first (queue, supersede:
//	            a newcomer replaces the waiters of its own job only)
//	slot_version N  compare-and-set counter: every change is a PutItem
//	                conditioned on the version read
//
// Every change reads the item, cleans it and writes it back conditionally,
// so concurrent invocations serialise on the version. Cleaning is what keeps
// a slot from leaking: a holder whose run has ended in the ledger (exit,
// cancel, STOPPED event, rejection, sweep), is gone, or is past the latest
// moment its task can still run (requested_at + timeout + grace + margin:
// the runner stops the job at its deadline) is dropped, and a waiter that is
// no longer waiting is dropped; then the oldest waiters are promoted into
// the free slots and started. A crashed invocation, a lost ECS event or a
// killed trigger therefore holds a slot at most until that bound, and any
// later admission, end of run or sweep frees it.

// DecisionQueued is the audit decision of a run that waits for a slot.
const DecisionQueued = "queued"

// holderMargin is added to a holder's deadline before it counts as gone.
const holderMargin = 2 * time.Minute

// slotOf is the concurrency of a job: its group, the group's size and the
// policy when it is full; ok is false for a job without a limit.
func (d *Dispatcher) slotOf(job string) (group string, limit int, policy string, ok bool) {
	j, known := d.cfg.Jobs[job]
	if !known || !j.Limited() {
		return "", 0, "", false
	}
	return j.SlotGroup(job), j.Concurrency, j.WhenFull(), true
}

// verdict is what admission decided for a run.
type verdict int

const (
	admitted verdict = iota
	full             // on_full reject
	waiting          // queued (queue, supersede)
)

// settled is the outcome of one change of a group's slots.
type settled struct {
	st         ledger.Slots
	items      map[string]ledger.Item // the holders and waiters as read
	start      []string               // holders to start: promoted waiters
	expired    []string               // waiters whose request expired
	superseded []string               // waiters replaced by a newer run
	resume     []string               // started from the queue, their start interrupted
}

// settle applies change to the group's cleaned slots, promotes waiters into
// free slots and writes the result conditionally, retrying on a concurrent
// change.
func (d *Dispatcher) settle(ctx context.Context, group string, limit int, change func(st *ledger.Slots, out *settled)) (settled, error) {
	for attempt := 0; ; attempt++ {
		read, err := d.ledger.GetSlots(ctx, group)
		if err != nil {
			return settled{}, err
		}
		out := settled{items: map[string]ledger.Item{}}
		st := ledger.Slots{Exists: read.Exists, Version: read.Version, Holders: map[string]string{}, Waiting: nil}
		now := d.now()
		for id, since := range read.Holders {
			it, ok, err := d.ledger.Get(ctx, id)
			if err != nil {
				return settled{}, err
			}
			if !ok || d.holderGone(it, now) {
				continue
			}
			out.items[id] = it
			st.Holders[id] = since
		}
		for _, id := range read.Waiting {
			it, ok, err := d.ledger.Get(ctx, id)
			if err != nil {
				return settled{}, err
			}
			if !ok || (it.Status != ledger.Queued && it.Status != ledger.Launching) || !it.EndedAt.IsZero() || slices.Contains(st.Waiting, id) {
				continue
			}
			out.items[id] = it
			if it.Status == ledger.Queued && d.queuedExpired(it, now) {
				out.expired = append(out.expired, id)
				continue
			}
			st.Waiting = append(st.Waiting, id)
		}
		if change != nil {
			change(&st, &out)
		}
		for len(st.Holders) < limit && len(st.Waiting) > 0 {
			id := st.Waiting[0]
			st.Waiting = st.Waiting[1:]
			st.Holders[id] = ledger.Stamp(now)
			out.start = append(out.start, id)
		}
		for id := range st.Holders {
			it, ok := out.items[id]
			switch {
			case !ok:
			case it.Status == ledger.Queued && !slices.Contains(out.start, id):
				out.start = append(out.start, id) // promoted earlier, its start interrupted
			case it.Status == ledger.Launching && it.QueuedRequest != "" && now.After(it.LeaseUntil):
				// Started from the queue by an invocation that failed or
				// died: no request redelivery will come for it.
				out.resume = append(out.resume, id)
			}
		}
		if sameSlots(read, st) {
			out.st = read
			return out, nil
		}
		err = d.ledger.PutSlots(ctx, group, read, st)
		if err == nil {
			st.Version = read.Version + 1
			st.Exists = true
			out.st = st
			return out, nil
		}
		if !errors.Is(err, ledger.ErrConditionFailed) {
			return settled{}, err
		}
		// Another invocation changed the slots: read them again.
		if !d.pause(ctx, time.Duration(10+rand.IntN(40))*time.Millisecond) {
			return settled{}, fmt.Errorf("concurrency slots %s keep changing; will look again", group)
		}
	}
}

func sameSlots(a, b ledger.Slots) bool {
	if len(a.Holders) != len(b.Holders) || !slices.Equal(a.Waiting, b.Waiting) {
		return false
	}
	for k := range a.Holders {
		if _, ok := b.Holders[k]; !ok {
			return false
		}
	}
	return a.Exists || len(b.Holders)+len(b.Waiting) == 0
}

// holderGone reports whether a slot holder's run can no longer be running.
func (d *Dispatcher) holderGone(it ledger.Item, now time.Time) bool {
	switch it.Status {
	case ledger.Rejected, ledger.Stopped, ledger.Abandoned, ledger.Cancelled:
		return true
	}
	if !it.EndedAt.IsZero() {
		return true
	}
	if it.Status == ledger.Queued {
		return false // promoted, about to start
	}
	timeout := 0 * time.Second
	if j, ok := d.cfg.Jobs[it.Job]; ok {
		timeout = j.Timeout.D()
	}
	from := it.RequestedAt
	if from.IsZero() {
		from = it.CreatedAt
	}
	// The runner stops the job at requested_at + timeout; ECS then gives it
	// the grace; a launch claim lives at most max_request_age + skew.
	latest := from.Add(timeout + d.cfg.Runner.Grace.D() + d.cfg.Broker.MaxRequestAge.D() + d.cfg.Broker.ClockSkew.D() + holderMargin)
	return now.After(latest)
}

// queuedExpired reports whether a waiting run's request has expired: it may
// wait in the queue at most until its request's expires_at (+ skew).
func (d *Dispatcher) queuedExpired(it ledger.Item, now time.Time) bool {
	req, err := protocol.DecodeRequest([]byte(it.QueuedRequest))
	return err != nil || now.After(req.ExpiresAt.Add(d.cfg.Broker.ClockSkew.D()))
}

// admit takes a slot for a run about to launch (status launching, this
// invocation holding its claim). ok is true when the launch may go on;
// otherwise the run has been answered: refused (reject) or queued.
func (d *Dispatcher) admit(ctx context.Context, req *protocol.Request, queueURL string, a audit) (ok bool, err error) {
	group, limit, policy, limited := d.slotOf(req.Job)
	if !limited {
		return true, nil
	}
	var v verdict
	res, err := d.settle(ctx, group, limit, func(st *ledger.Slots, out *settled) {
		switch {
		case st.Holders[req.RunID] != "":
			v = admitted
		case len(st.Holders) < limit && len(st.Waiting) == 0:
			st.Holders[req.RunID] = ledger.Stamp(d.now())
			v = admitted
		case slices.Contains(st.Waiting, req.RunID):
			v = waiting
		case policy == config.OnFullReject:
			v = full
		case policy == config.OnFullSupersede:
			// A run replaces only waiters of its own job: another job's
			// waiting run belongs to principals this one may not steer
			// (issue 24). The catalogue gives a group one on_full.
			kept := st.Waiting[:0:0]
			for _, id := range st.Waiting {
				if out.items[id].Job == req.Job {
					out.superseded = append(out.superseded, id)
				} else {
					kept = append(kept, id)
				}
			}
			st.Waiting = append(kept, req.RunID)
			v = waiting
		default:
			st.Waiting = append(st.Waiting, req.RunID)
			v = waiting
		}
	})
	if err != nil {
		return false, err
	}
	// The run itself is never among the runs to start here: it is either a
	// holder (admitted) or waiting.
	res.start = slices.DeleteFunc(res.start, func(id string) bool { return id == req.RunID })
	if err := d.afterSettle(ctx, req.RunID, res); err != nil {
		return false, err
	}
	switch v {
	case admitted:
		return true, nil
	case full:
		return false, d.rejectLaunch(ctx, req.RunID, req.Job, queueURL, rejection{protocol.RejectBusy, d.busyReason(req.Job, group, limit, res)}, time.Time{}, a)
	}
	return false, d.enqueue(ctx, req, queueURL, group, limit, a)
}

// busyReason names the run that holds the slot (the oldest holder).
func (d *Dispatcher) busyReason(job, group string, limit int, res settled) string {
	id, since := oldestHolder(res.st)
	s := fmt.Sprintf("job %s is at its concurrency limit (%d, %s)", job, limit, group)
	if id != "" {
		s += "; run " + id
		if it, ok := res.items[id]; ok && requesterOf(it) != "" {
			s += " requested by " + requesterOf(it)
		}
		s += " holds the slot since " + since
	}
	return s + "; try again when it has ended"
}

func oldestHolder(st ledger.Slots) (string, string) {
	ids := make([]string, 0, len(st.Holders))
	for id := range st.Holders {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return st.Holders[ids[i]] < st.Holders[ids[j]] })
	if len(ids) == 0 {
		return "", ""
	}
	return ids[0], st.Holders[ids[0]]
}

// enqueue records a waiting run: its status and request in the ledger, then
// a look at the slots (it may have been promoted or superseded meanwhile),
// then the queued record, audit line and event.
func (d *Dispatcher) enqueue(ctx context.Context, req *protocol.Request, queueURL, group string, limit int, a audit) error {
	if err := d.hold(ctx, req, queueURL, ledger.Queued); err != nil {
		return err
	}
	now := d.now()
	res, err := d.settle(ctx, group, limit, nil)
	if err != nil {
		return err
	}
	if err := d.afterSettle(ctx, "", res); err != nil {
		return err
	}
	pos := slices.Index(res.st.Waiting, req.RunID) + 1
	if pos == 0 {
		if _, holder := res.st.Holders[req.RunID]; !holder {
			// Neither waiting nor holding: a newer run superseded it
			// before it was marked queued.
			return d.rejectQueued(ctx, req.RunID, rejection{protocol.RejectSuperseded, "superseded by a newer run of " + group + " while it was being queued"})
		}
		return nil // promoted and started by afterSettle
	}
	rec := d.record(protocol.TypeQueued, protocol.SourceDispatcher, uint64(max(now.UnixMilli(), 2)))
	q := &protocol.Queued{Group: group, Concurrency: limit, Position: pos}
	if id, since := oldestHolder(res.st); id != "" {
		q.Holder = id
		q.HolderSince, _ = time.Parse(time.RFC3339Nano, since)
		if it, ok := res.items[id]; ok {
			q.HolderRequester = requesterOf(it)
		}
	}
	rec.Queued = q
	if err := d.send(ctx, queueURL, req.RunID, rec); err != nil {
		return err
	}
	a.Decision, a.Reason = DecisionQueued, fmt.Sprintf("waiting for a slot of %s (concurrency %d), position %d", group, limit, pos)
	d.write(ctx, a)
	ev := protocol.RunEvent{RunID: req.RunID, Job: req.Job, State: protocol.EventQueued, Reason: a.Reason, Requester: a.Principal}
	if req.Requester != nil {
		ev.ClaimedRequester = req.Requester.String()
	}
	d.emit(ctx, ev)
	return nil
}

// afterSettle does what a change of the slots asks for: refuse superseded
// and expired waiters, start promoted ones. self is skipped.
func (d *Dispatcher) afterSettle(ctx context.Context, self string, res settled) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, id := range res.superseded {
		if id != self {
			keep(d.rejectQueued(ctx, id, rejection{protocol.RejectSuperseded, "superseded by a newer run of job " + res.items[id].Job + " (on_full: supersede); it never started"}))
		}
	}
	for _, id := range res.expired {
		keep(d.rejectQueued(ctx, id, rejection{protocol.RejectExpired, "the request expired while the run waited for a concurrency slot; send it again"}))
	}
	for _, id := range res.start {
		if id != self {
			keep(d.startQueued(ctx, id))
		}
	}
	for _, id := range res.resume {
		if id != self {
			keep(d.resumeQueued(ctx, res.items[id]))
		}
	}
	return first
}

// releaseSlot gives up a run's slot (or its place in the queue) once the run
// has ended, and starts the next waiting run.
func (d *Dispatcher) releaseSlot(ctx context.Context, job, runID string) error {
	group, limit, _, limited := d.slotOf(job)
	if !limited {
		return nil
	}
	res, err := d.settle(ctx, group, limit, func(st *ledger.Slots, _ *settled) {
		delete(st.Holders, runID)
		st.Waiting = slices.DeleteFunc(st.Waiting, func(id string) bool { return id == runID })
	})
	if err != nil {
		return err
	}
	return d.afterSettle(ctx, runID, res)
}

// reconcileSlots cleans every group's slots and starts what may start: the
// sweep's safety net for lost events and crashed invocations.
func (d *Dispatcher) reconcileSlots(ctx context.Context) error {
	done := map[string]bool{}
	var first error
	for _, name := range d.cfg.JobNames() {
		group, limit, _, limited := d.slotOf(name)
		if !limited || done[group] {
			continue
		}
		done[group] = true
		res, err := d.settle(ctx, group, limit, nil)
		if err == nil {
			err = d.afterSettle(ctx, "", res)
		}
		if err != nil {
			d.log.Warn("could not reconcile concurrency slots", "group", group, "error", err.Error())
			if first == nil {
				first = err
			}
		}
	}
	return first
}
