package dispatcher_test

import (
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// Security review (warm runners, second pass): startedBy is any string a
// RunTask caller chooses, and a slot's id is in its inbox's name and its
// task's tag, so another task's events can name a slot that holds no run
// yet: one starting (its RUNNING would make it idle on the other task, to
// which the next run would then be assigned) and one idle (its STOPPED
// would drop the slot and delete its inbox). Neither may move the slot.
// What is proven: the ledger's slot item and the inbox in moto, after the
// recorded ECS event templates (moto runs no task).
func TestAttackForeignTaskEventsMoveNoFreeSlot(t *testing.T) {
	e := newEnv(t)
	e.withWarm("website", 1)
	e.sweep()
	var id string
	var slot ledger.WarmSlot
	for sid, s := range e.pool("website").Slots {
		id, slot = sid, s
	}
	if slot.State != ledger.SlotStarting || slot.TaskARN == "" {
		t.Fatalf("new slot %s: %+v", id, slot)
	}
	foreign := slot
	foreign.TaskARN = slot.TaskARN[:len(slot.TaskARN)-4] + "beef"
	e.slotEvent("ecs-task-running.json", id, foreign, 2)
	if got := e.pool("website").Slots[id]; got.State != ledger.SlotStarting || got.TaskARN != slot.TaskARN {
		t.Fatalf("another task's RUNNING naming a starting slot: %+v, want still starting on %s", got, slot.TaskARN)
	}
	e.slotEvent("ecs-task-running.json", id, slot, 2)
	e.slotEvent("ecs-task-stopped-exited.json", id, foreign, 3)
	got, ok := e.pool("website").Slots[id]
	if !ok || got.State != ledger.SlotIdle || got.TaskARN != slot.TaskARN {
		t.Fatalf("another task's STOPPED naming an idle slot: %+v (in pool %v), want idle on %s", got, ok, slot.TaskARN)
	}
	e.inboxMessages(slot.Inbox) // the inbox is still there (a deleted one fails the receive)
}
