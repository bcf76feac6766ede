package dispatcher_test

import (
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Findings of the review in issue 24, dispatcher side. Each test failed
// before its fix.

// TestSupersedeTouchesOnlyItsOwnJob: a principal not allowed to run
// migrate (a Jenkins session outside release-*) starts website, which
// shares migrate's group with on_full supersede. Before the fix the
// waiting migrate run was refused as superseded.
func TestSupersedeTouchesOnlyItsOwnJob(t *testing.T) {
	e := newEnv(t)
	for _, job := range []string{"website", "migrate"} {
		j := e.cfg.Jobs[job]
		j.Concurrency, j.ConcurrencyGroup, j.OnFull = 1, "prod", config.OnFullSupersede
		e.cfg.Jobs[job] = j
	}
	holder := e.submit()
	e.wantStatus(holder, ledger.Accepted)
	mig := e.request(func(r *protocol.Request) { r.Job, r.Params = "migrate", map[string]string{"steps": "2"} })
	if err := e.run(mig); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Millisecond)
	e.wantStatus(mig.RunID, ledger.Queued)
	stranger := e.assume(jenkinsRole, "nightly-7")
	web := e.request()
	if err := e.runAs(stranger, web); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Millisecond)
	e.wantStatus(mig.RunID, ledger.Queued) // before: rejected, superseded
	e.wantStatus(web.RunID, ledger.Queued)
	// A newer website run still supersedes the older website waiter.
	web2 := e.submit()
	e.wantStatus(web.RunID, ledger.Rejected)
	if it := e.item(web.RunID); it.RejectCode != protocol.RejectSuperseded {
		t.Errorf("older website waiter: %s %q, want %s", it.RejectCode, it.Reason, protocol.RejectSuperseded)
	}
	e.wantStatus(mig.RunID, ledger.Queued)
	// The slot frees: the oldest waiter (migrate) starts, website waits on.
	e.stop(holder)
	e.wantStatus(mig.RunID, ledger.Accepted)
	e.wantStatus(web2, ledger.Queued)
}
