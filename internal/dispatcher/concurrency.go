package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Concurrency (issue 16). A job with `concurrency: N` takes one of N slots
// of its group (the job's own, or its concurrency_group) before RunTask.
// The slots are one item of the run ledger, key "slot#<group>":
//
//	holders  M  run id → since: the runs that hold a slot
//	waiting  L  run ids waiting for a slot, oldest first (queue, supersede)
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

// StatusQueued: the run waits for a concurrency slot; its request is kept
// in queued_request until it starts.
const StatusQueued = "queued"

// DecisionQueued is the audit decision of a run that waits for a slot.
const DecisionQueued = "queued"

// holderMargin is added to a holder's deadline before it counts as gone.
const holderMargin = 2 * time.Minute

type slotState struct {
	exists  bool
	version int64
	holders map[string]string // run id → since (stamp)
	waiting []string
}

func slotKey(group string) string { return protocol.SlotKeyPrefix + group }

func (l *ledger) getSlot(ctx context.Context, group string) (slotState, error) {
	item, version, err := l.getVersioned(ctx, slotKey(group), protocol.LedgerSlotVersion)
	if err != nil {
		return slotState{}, fmt.Errorf("reading concurrency slots %s: %w", group, err)
	}
	st := slotState{exists: item != nil, version: version, holders: map[string]string{}}
	if m, ok := item[protocol.LedgerSlotHolders].(*types.AttributeValueMemberM); ok {
		for k, v := range m.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				st.holders[k] = sv.Value
			}
		}
	}
	if l, ok := item[protocol.LedgerSlotWaiting].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				st.waiting = append(st.waiting, sv.Value)
			}
		}
	}
	return st, nil
}

// putSlot writes st if the item is still at the version it was read at.
func (l *ledger) putSlot(ctx context.Context, group string, read, st slotState) error {
	holders := map[string]types.AttributeValue{}
	for k, v := range st.holders {
		holders[k] = s(v)
	}
	waiting := make([]types.AttributeValue, 0, len(st.waiting))
	for _, w := range st.waiting {
		waiting = append(waiting, s(w))
	}
	item := map[string]types.AttributeValue{
		protocol.LedgerRunID:       s(slotKey(group)),
		protocol.LedgerStatus:      s("slots"),
		protocol.LedgerSlotHolders: &types.AttributeValueMemberM{Value: holders},
		protocol.LedgerSlotWaiting: &types.AttributeValueMemberL{Value: waiting},
	}
	if err := l.putVersioned(ctx, item, protocol.LedgerSlotVersion, read.exists, read.version); err != nil {
		if errors.Is(err, errConditionFailed) {
			return err
		}
		return fmt.Errorf("writing concurrency slots %s: %w", group, err)
	}
	return nil
}

// getVersioned reads a ledger item that is not a run (concurrency slots, a
// principal's open runs) with its version (versionAttr); a nil item when
// there is none.
func (l *ledger) getVersioned(ctx context.Context, key, versionAttr string) (map[string]types.AttributeValue, int64, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{protocol.LedgerRunID: s(key)},
	})
	if err != nil {
		return nil, 0, err
	}
	var version int64
	if v, ok := out.Item[versionAttr].(*types.AttributeValueMemberN); ok {
		version, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	return out.Item, version, nil
}

// putVersioned writes item (a ledger item that is not a run: concurrency
// slots, a principal's open runs) if it is still at the version it was read
// at (versionAttr; absent when !exists), with the version one higher;
// errConditionFailed when someone wrote it in between.
func (l *ledger) putVersioned(ctx context.Context, item map[string]types.AttributeValue, versionAttr string, exists bool, version int64) error {
	item[versionAttr] = &types.AttributeValueMemberN{Value: strconv.FormatInt(version+1, 10)}
	in := &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item}
	if exists {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": versionAttr}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(" + protocol.LedgerRunID + ")")
	}
	// A token of this write: when its answer is lost and the SDK's repeat
	// fails the condition on it, the write is known as ours (the change it
	// computed, e.g. which waiters it superseded, still stands).
	token := newClaimToken()
	item[protocol.LedgerWriteToken] = s(token)
	_, err := l.db.PutItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, _, gerr := l.getVersioned(ctx, item[protocol.LedgerRunID].(*types.AttributeValueMemberS).Value, versionAttr)
		if gerr != nil {
			return gerr
		}
		if t, ok := cur[protocol.LedgerWriteToken].(*types.AttributeValueMemberS); ok && t.Value == token {
			return nil
		}
		return errConditionFailed
	}
	return err
}

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
	st         slotState
	items      map[string]ledgerItem // the holders and waiters as read
	start      []string              // holders to start: promoted waiters
	expired    []string              // waiters whose request expired
	superseded []string              // waiters replaced by a newer run
	resume     []string              // started from the queue, their start interrupted
}

// settle applies change to the group's cleaned slots, promotes waiters into
// free slots and writes the result conditionally, retrying on a concurrent
// change.
func (d *Dispatcher) settle(ctx context.Context, group string, limit int, change func(st *slotState, out *settled)) (settled, error) {
	for attempt := 0; ; attempt++ {
		read, err := d.ledger.getSlot(ctx, group)
		if err != nil {
			return settled{}, err
		}
		out := settled{items: map[string]ledgerItem{}}
		st := slotState{exists: read.exists, version: read.version, holders: map[string]string{}, waiting: nil}
		now := d.now()
		for id, since := range read.holders {
			it, ok, err := d.ledger.get(ctx, id)
			if err != nil {
				return settled{}, err
			}
			if !ok || d.holderGone(it, now) {
				continue
			}
			out.items[id] = it
			st.holders[id] = since
		}
		for _, id := range read.waiting {
			it, ok, err := d.ledger.get(ctx, id)
			if err != nil {
				return settled{}, err
			}
			if !ok || (it.Status != StatusQueued && it.Status != StatusLaunching) || !it.EndedAt.IsZero() || slices.Contains(st.waiting, id) {
				continue
			}
			out.items[id] = it
			if it.Status == StatusQueued && d.queuedExpired(it, now) {
				out.expired = append(out.expired, id)
				continue
			}
			st.waiting = append(st.waiting, id)
		}
		if change != nil {
			change(&st, &out)
		}
		for len(st.holders) < limit && len(st.waiting) > 0 {
			id := st.waiting[0]
			st.waiting = st.waiting[1:]
			st.holders[id] = stamp(now)
			out.start = append(out.start, id)
		}
		for id := range st.holders {
			it, ok := out.items[id]
			switch {
			case !ok:
			case it.Status == StatusQueued && !slices.Contains(out.start, id):
				out.start = append(out.start, id) // promoted earlier, its start interrupted
			case it.Status == StatusLaunching && it.QueuedRequest != "" && now.After(it.LeaseUntil):
				// Started from the queue by an invocation that failed or
				// died: no request redelivery will come for it.
				out.resume = append(out.resume, id)
			}
		}
		if sameSlots(read, st) {
			out.st = read
			return out, nil
		}
		err = d.ledger.putSlot(ctx, group, read, st)
		if err == nil {
			st.version = read.version + 1
			st.exists = true
			out.st = st
			return out, nil
		}
		if !errors.Is(err, errConditionFailed) {
			return settled{}, err
		}
		// Another invocation changed the slots: read them again.
		if !d.pause(ctx, time.Duration(10+rand.IntN(40))*time.Millisecond) {
			return settled{}, fmt.Errorf("concurrency slots %s keep changing; will look again", group)
		}
	}
}

func sameSlots(a, b slotState) bool {
	if len(a.holders) != len(b.holders) || !slices.Equal(a.waiting, b.waiting) {
		return false
	}
	for k := range a.holders {
		if _, ok := b.holders[k]; !ok {
			return false
		}
	}
	return a.exists || len(b.holders)+len(b.waiting) == 0
}

// holderGone reports whether a slot holder's run can no longer be running.
func (d *Dispatcher) holderGone(it ledgerItem, now time.Time) bool {
	switch it.Status {
	case StatusRejected, StatusStopped, StatusAbandoned, StatusCancelled:
		return true
	}
	if !it.EndedAt.IsZero() {
		return true
	}
	if it.Status == StatusQueued {
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
func (d *Dispatcher) queuedExpired(it ledgerItem, now time.Time) bool {
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
	res, err := d.settle(ctx, group, limit, func(st *slotState, out *settled) {
		switch {
		case st.holders[req.RunID] != "":
			v = admitted
		case len(st.holders) < limit && len(st.waiting) == 0:
			st.holders[req.RunID] = stamp(d.now())
			v = admitted
		case slices.Contains(st.waiting, req.RunID):
			v = waiting
		case policy == config.OnFullReject:
			v = full
		case policy == config.OnFullSupersede:
			out.superseded = append(out.superseded, st.waiting...)
			st.waiting = []string{req.RunID}
			v = waiting
		default:
			st.waiting = append(st.waiting, req.RunID)
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

func oldestHolder(st slotState) (string, string) {
	ids := make([]string, 0, len(st.holders))
	for id := range st.holders {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return st.holders[ids[i]] < st.holders[ids[j]] })
	if len(ids) == 0 {
		return "", ""
	}
	return ids[0], st.holders[ids[0]]
}

// enqueue records a waiting run: its status and request in the ledger, then
// a look at the slots (it may have been promoted or superseded meanwhile),
// then the queued record, audit line and event.
func (d *Dispatcher) enqueue(ctx context.Context, req *protocol.Request, queueURL, group string, limit int, a audit) error {
	if err := d.hold(ctx, req, queueURL, StatusQueued); err != nil {
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
	pos := slices.Index(res.st.waiting, req.RunID) + 1
	if pos == 0 {
		if _, holder := res.st.holders[req.RunID]; !holder {
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

// hold keeps a run that may not launch yet (queued, awaiting approval) in
// the ledger with its request, and gives up this invocation's lease.
func (d *Dispatcher) hold(ctx context.Context, req *protocol.Request, queueURL, status string) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	now := stamp(d.now())
	_, err = d.ledger.update(ctx, req.RunID, map[string]string{protocol.LedgerStatus: status, protocol.LedgerQueuedRequest: string(body),
		protocol.LedgerQueuedAt: now, protocol.LedgerQueueURL: queueURL, protocol.LedgerLeaseUntil: now},
		cond{protocol.LedgerStatus, StatusLaunching})
	if err != nil && !errors.Is(err, errConditionFailed) {
		return err
	}
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

// rejectQueued ends a waiting run with a rejection (superseded, expired,
// cancelled). A run that is no longer waiting is left alone.
func (d *Dispatcher) rejectQueued(ctx context.Context, runID string, rej rejection) error {
	return d.rejectWaiting(ctx, runID, StatusQueued, rej)
}

// rejectWaiting ends a run held in status (queued, awaiting approval) with
// a rejection; a run no longer in that status is left alone.
func (d *Dispatcher) rejectWaiting(ctx context.Context, runID, status string, rej rejection) error {
	_, err := d.rejectWaitingWith(ctx, runID, status, rej, nil)
	return err
}

// rejectWaitingWith is rejectWaiting that also sets extra in the same
// conditional update (an approver's decision), and says whether this call
// ended the run.
func (d *Dispatcher) rejectWaitingWith(ctx context.Context, runID, status string, rej rejection, extra map[string]string) (bool, error) {
	it, ended, err := d.endWaiting(ctx, runID, status, rej, extra)
	if !ended || err != nil {
		return ended, err
	}
	return true, d.answerRejection(ctx, it, rej)
}

// endWaiting moves a run held in status to rejected in the ledger (with
// extra set in the same conditional update); ended is false when the run
// was no longer in that status.
func (d *Dispatcher) endWaiting(ctx context.Context, runID, status string, rej rejection, extra map[string]string) (it ledgerItem, ended bool, err error) {
	set := map[string]string{protocol.LedgerStatus: StatusRejected, protocol.LedgerRejectCode: rej.code, protocol.LedgerReason: rej.reason}
	for k, v := range extra {
		set[k] = v
	}
	it, err = d.ledger.update(ctx, runID, set, cond{protocol.LedgerStatus, status})
	if errors.Is(err, errConditionFailed) {
		return ledgerItem{}, false, nil
	}
	if err != nil {
		return ledgerItem{}, false, err
	}
	return it, true, nil
}

// answerRejection tells the trigger of a waiting run that the ledger has
// ended with rej: the rejected record on its queue, then the run's end.
func (d *Dispatcher) answerRejection(ctx context.Context, it ledgerItem, rej rejection) error {
	url := it.QueueURL
	if url == "" {
		var found bool
		var err error
		if url, found, err = d.queueURL(ctx, it.RunID); err != nil {
			return err
		} else if !found {
			_, err := d.ledger.update(ctx, it.RunID, map[string]string{protocol.LedgerEndedAt: stamp(d.now())})
			return err
		}
	}
	var req protocol.Request
	_ = json.Unmarshal([]byte(it.QueuedRequest), &req)
	return d.rejectTo(ctx, it.RunID, url, rej, audit{RunID: it.RunID, Kind: protocol.KindRun, Job: it.Job, Requester: req.Requester, Principal: it.RequestedBy, Params: it.Params})
}

// startQueued launches a promoted run from the request kept in the ledger.
// Of several invocations that try, the one whose conditional update moves it
// from queued to launching does it.
func (d *Dispatcher) startQueued(ctx context.Context, runID string) error {
	lease := d.leaseEnd(ctx)
	it, err := d.ledger.update(ctx, runID, map[string]string{protocol.LedgerStatus: StatusLaunching, protocol.LedgerLeaseUntil: stamp(lease)},
		cond{protocol.LedgerStatus, StatusQueued})
	if errors.Is(err, errConditionFailed) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.launchQueued(ctx, it, lease, false)
}

// resumeQueued takes over the start of a run from the queue whose starting
// invocation failed or died (its lease is over): exactly one caller wins the
// take-over, looks for a task the other may have started, and otherwise
// launches.
func (d *Dispatcher) resumeQueued(ctx context.Context, it ledgerItem) error {
	lease := d.leaseEnd(ctx)
	if err := d.ledger.takeOver(ctx, it.RunID, it.LeaseUntil, lease); err != nil {
		if errors.Is(err, errConditionFailed) {
			return nil
		}
		return err
	}
	return d.launchQueued(ctx, it, lease, true)
}

// launchQueued launches a run from its kept request, under this
// invocation's lease.
func (d *Dispatcher) launchQueued(ctx context.Context, it ledgerItem, lease time.Time, lookFirst bool) error {
	runID := it.RunID
	req, derr := protocol.DecodeRequest([]byte(it.QueuedRequest))
	a := audit{RunID: runID, Kind: protocol.KindRun, Job: it.Job, Params: it.Params, Reason: "started from the ledger: a concurrency slot freed, or the run was approved"}
	if derr != nil {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, rejection{protocol.RejectLaunch, "the queued request could not be read back: " + oneLine(derr.Error())}, lease, a)
	}
	a.Requester, a.Principal = req.Requester, it.RequestedBy
	// The principal the request's proof verified when it arrived: the run
	// is checked and its queue made for it, as for any run.
	p, perr := identity.PrincipalFromARN(it.RequestedBy)
	if perr != nil {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, rejection{protocol.RejectLaunch, "the queued run's verified principal could not be read back: " + oneLine(perr.Error())}, lease, a)
	}
	if d.now().After(req.ExpiresAt.Add(d.cfg.Broker.ClockSkew.D())) {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, rejection{protocol.RejectExpired, "the request expired while the run waited for a concurrency slot; send it again"}, lease, a)
	}
	if lookFirst {
		arn, err := d.findTask(ctx, runID, true)
		if err != nil {
			d.releaseClaim(ctx, runID, lease)
			return err
		}
		if arn != "" {
			url, err := d.createQueue(ctx, req, p)
			if err == nil {
				a.Reason = "finished an interrupted start from the queue"
				err = d.accept(ctx, runID, req.Job, arn, url, a)
			}
			if err != nil {
				d.releaseClaim(ctx, runID, lease)
			}
			return err
		}
	}
	cj, rej := d.checkJob(req, p)
	if rej != nil {
		return d.rejectLaunch(ctx, runID, it.Job, it.QueueURL, *rej, lease, a)
	}
	if err := d.launch(ctx, req, p, cj, a); err != nil {
		d.releaseClaim(ctx, runID, lease)
		return err
	}
	return nil
}

// releaseSlot gives up a run's slot (or its place in the queue) once the run
// has ended, and starts the next waiting run.
func (d *Dispatcher) releaseSlot(ctx context.Context, job, runID string) error {
	group, limit, _, limited := d.slotOf(job)
	if !limited {
		return nil
	}
	res, err := d.settle(ctx, group, limit, func(st *slotState, _ *settled) {
		delete(st.holders, runID)
		st.waiting = slices.DeleteFunc(st.waiting, func(id string) bool { return id == runID })
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

// cancelQueued ends a waiting run that its trigger cancelled.
func (d *Dispatcher) cancelQueued(ctx context.Context, item ledgerItem, a audit) error {
	what := "a concurrency slot"
	if item.Status == StatusAwaitingApproval {
		what = "approval"
	}
	if err := d.rejectWaiting(ctx, item.RunID, item.Status, rejection{protocol.RejectCancelled, "cancelled by " + requesterOf(item) + " while waiting for " + what + "; nothing was launched"}); err != nil {
		return d.failed(ctx, a, err)
	}
	a.Decision, a.Reason = DecisionCancelled, "cancelled while waiting for "+what
	d.write(ctx, a)
	return nil
}
