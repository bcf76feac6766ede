package dispatcher

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// rejection is a refusal with a code and a one-line reason.
type rejection struct{ code, reason string }

// checkedJob is a run request's job once its checks passed: the catalogue
// entry, the parameters resolved once (every value checked against its
// declaration, defaults filled in) and the argv rendered from them. The
// launch uses these values and never resolves the parameters again.
type checkedJob struct {
	job    config.Job
	params map[string]string // from config.Job.Resolve
	argv   []string
}

// check decides whether a well-formed run request may run. It uses no AWS
// call: it is the hot path measured by the handler benchmark.
func (d *Dispatcher) check(req *protocol.Request, p identity.Principal, now time.Time) (checkedJob, *rejection) {
	if rej := d.checkTime(req, now); rej != nil {
		return checkedJob{}, rej
	}
	return d.checkJob(req, p)
}

// checkTime refuses expired, future-dated, overlong and replayed requests.
func (d *Dispatcher) checkTime(req *protocol.Request, now time.Time) *rejection {
	skew := d.cfg.Broker.ClockSkew.D()
	maxAge := d.cfg.Broker.MaxRequestAge.D()
	switch {
	case now.After(req.ExpiresAt.Add(skew)):
		return &rejection{protocol.RejectExpired, fmt.Sprintf("request expired at %s (broker time %s); check the CI clock or send it again", req.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case req.RequestedAt.After(now.Add(skew)):
		return &rejection{protocol.RejectExpired, fmt.Sprintf("request is dated %s, in the future of the broker's clock (%s); check the CI clock", req.RequestedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case req.ExpiresAt.Sub(req.RequestedAt) > maxAge:
		return &rejection{protocol.RejectExpired, fmt.Sprintf("request is valid for %s, longer than the broker's limit of %s", req.ExpiresAt.Sub(req.RequestedAt).Round(time.Second), maxAge)}
	}
	idTime, err := protocol.RunIDTime(req.RunID)
	if err != nil || idTime.Before(now.Add(-maxAge-skew)) || idTime.After(now.Add(skew)) {
		return &rejection{protocol.RejectReplayed, fmt.Sprintf("run id %s was not made for this request (its time is %s); make a new run id for every run", req.RunID, idTime.Format(time.RFC3339))}
	}
	return nil
}

// checkJob checks the job, whether the verified principal p may run it, and
// its parameters against the catalogue, resolving the parameters once, and
// renders the command.
func (d *Dispatcher) checkJob(req *protocol.Request, p identity.Principal) (checkedJob, *rejection) {
	job, ok := d.cfg.Jobs[req.Job]
	if !ok {
		return checkedJob{}, &rejection{protocol.RejectUnknownJob, fmt.Sprintf("job %q is not in this broker's catalogue (jobs: %s)", req.Job, strings.Join(d.cfg.JobNames(), ", "))}
	}
	if rej := d.mayRun(p, req.Job, job.AllowedPrincipals); rej != nil {
		return checkedJob{job: job}, rej
	}
	vals, err := job.Resolve(req.Params)
	if err != nil {
		return checkedJob{job: job}, &rejection{protocol.RejectBadParams, oneLine(fmt.Sprintf("job %q: %v", req.Job, err))}
	}
	return checkedJob{job: job, params: vals, argv: job.Argv(vals)}, nil
}
