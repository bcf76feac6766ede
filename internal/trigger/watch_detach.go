package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
)

// --detach (issue 25, the `gh workflow run` / `kubectl apply` habit): the
// watch ends as soon as the broker has taken the run — accepted, or
// waiting (queued for a slot, awaiting approval) — and the trigger prints
// the run id and exits 0 without cancelling or releasing it: the run goes
// on, and `deploy-trigger attach RUN_ID` follows it later (from the run log
// and the ledger, not from the run queue, which the sweep deletes). A
// rejection still ends the trigger with 241, as without --detach.

// errDetached ends the watch of a detached run: the records after the one
// that said the broker took the run are neither printed nor waited for.
var errDetached = errors.New("detached")

// detachHere returns errDetached when the watch may leave now: --detach,
// and the broker took the run (accepted, queued, awaiting approval).
func (w *watch) detachHere() error {
	if w.cfg.Detach && !w.rejected && (w.accepted != nil || w.waiting) {
		return errDetached
	}
	return nil
}

// detachedState is where the run was when the trigger detached.
func (w *watch) detachedState() string {
	switch {
	case w.accepted != nil:
		return "accepted"
	case w.awaitingApproval:
		return "awaiting approval"
	}
	return "queued"
}

// detach ends a detached trigger: one notice on stderr, the run id on
// stdout (a JSON object in json mode), exit 0.
func (a *app) detach(out printer, w *watch, mode string) error {
	state := w.detachedState()
	out.notice(fmt.Sprintf("detached from run %s (%s); it goes on: %s follows it and exits with the job's code", w.runID, state, runCommand("attach", w.cfg.Env, w.runID)))
	a.flush()
	if mode == "json" {
		b, _ := json.Marshal(struct {
			RunID  string `json:"run_id"`
			Status string `json:"detached"`
		}{w.runID, state})
		fmt.Fprintln(a.stdout, string(b))
		return nil
	}
	fmt.Fprintln(a.stdout, w.runID)
	return nil
}
