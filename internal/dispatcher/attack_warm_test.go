package dispatcher_test

import (
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Security review of issue 26: a warm runner runs exactly one run. Once a
// slot is assigned, nothing that reaches the dispatcher may make it idle
// again and give it a second run: EventBridge delivers at least once and
// out of order, so the slot's RUNNING event comes again after the
// assignment (replayed, a later version, an older one); a sweep runs
// between. A second run then must not be assigned to that slot (it starts
// cold: the replacement is still starting), and the slot's inbox must hold
// the first run's assignment only. Another task's event naming the slot
// (startedBy is any string a RunTask caller chooses) changes nothing
// either. What is proven: the ledger's slot item and the inbox in moto,
// after the recorded ECS event templates (moto runs no task).
func TestAttackAssignedSlotNeverTakesASecondRun(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	id, slot := e.idleSlot("website")
	first := e.request()
	if err := e.run(first); err != nil {
		t.Fatal(err)
	}
	if got := e.pool("website").Slots[id]; got.State != ledger.SlotAssigned || got.Run != first.RunID {
		t.Fatalf("slot after the first run: %+v", got)
	}
	for _, v := range []int{2, 3, 1} { // the RUNNING event again: same, later and older versions
		e.slotEvent("ecs-task-running.json", id, slot, v)
	}
	forged := slot
	forged.TaskARN = slot.TaskARN[:len(slot.TaskARN)-4] + "beef"
	e.slotEvent("ecs-task-running.json", id, forged, 5)
	e.slotEvent("ecs-task-stopped-exited.json", id, forged, 6) // another task "stops": the run must go on
	e.sweep()
	if got := e.pool("website").Slots[id]; got.State != ledger.SlotAssigned || got.Run != first.RunID || got.TaskARN != slot.TaskARN {
		t.Fatalf("slot after replayed, late and foreign events and a sweep: %+v, want still assigned to %s on %s", got, first.RunID, slot.TaskARN)
	}
	if it := e.item(first.RunID); it.Status != ledger.Accepted {
		t.Errorf("another task's STOPPED naming the slot ended the run: %+v", it)
	}
	second := e.request()
	if err := e.run(second); err != nil {
		t.Fatal(err)
	}
	if acc := e.only(second.RunID, protocol.TypeAccepted).Accepted; acc.TaskARN == slot.TaskARN || acc.Start == protocol.StartWarm {
		t.Errorf("the second run was given the first run's warm runner: %+v", acc)
	}
	msgs := e.inboxMessages(slot.Inbox)
	if len(msgs) != 1 {
		t.Fatalf("the slot's inbox holds %d messages, want the first run's one assignment", len(msgs))
	}
	if a, err := protocol.DecodeAssignment([]byte(msgs[0])); err != nil || a.RunID != first.RunID {
		t.Errorf("the slot's inbox holds %+v (%v), want the first run's assignment", a, err)
	}
}
