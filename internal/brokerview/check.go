package brokerview

import (
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/yamlerr"
)

// Trusted reports whether p is one of the broker's trusted principals
// (identity.MatchTrusted, as the dispatcher decides it).
func (v *View) Trusted(p identity.Principal) bool { return identity.TrustedBy(p, v.TrustedPrincipals) }

// Viewer reports whether p is one of the catalogue's viewers: those the
// reader role trusts.
func (v *View) Viewer(p identity.Principal) bool { return identity.TrustedBy(p, v.Viewers) }

// MayRun says whether p may run job, by the dispatcher's rule
// (identity.MayRun). The error says why not, as the broker's refusal would.
func (v *View) MayRun(p identity.Principal, job string) error {
	j := v.Jobs[job]
	if identity.MayRun(p, j.AllowedPrincipals, v.Trusted(p)) {
		return nil
	}
	if len(j.AllowedPrincipals) == 0 {
		return fmt.Errorf("you (%s) may not run job %q: you are not one of this broker's trusted principals (%s)", p.ARN, job, strings.Join(v.TrustedPrincipals, ", "))
	}
	return fmt.Errorf("you (%s) may not run job %q: only its allowed_principals may (%s)", p.ARN, job, strings.Join(j.AllowedPrincipals, ", "))
}

// RunnableJobs are the jobs p may run, sorted.
func (v *View) RunnableJobs(p identity.Principal) []string {
	var out []string
	for _, name := range v.JobNames() {
		if v.MayRun(p, name) == nil {
			out = append(out, name)
		}
	}
	return out
}

// Verdict is what the broker would do with a run request, as far as its
// published view tells.
type Verdict struct {
	// Params are the parameters the job would run with, defaults filled in
	// (a secret default stands as "(secret default)").
	Params map[string]string
	// Notes say what would happen besides starting: approval, concurrency.
	Notes []string
}

// ParamError says the parameters do not fit the job's declaration, as the
// broker's "bad-params" refusal would.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

// UnknownJobError says the job is not in the deployed catalogue.
type UnknownJobError struct{ Msg string }

func (e *UnknownJobError) Error() string { return e.Msg }

// NotAllowedError says the principal may not run the job.
type NotAllowedError struct{ Msg string }

func (e *NotAllowedError) Error() string { return e.Msg }

// Check decides a run request as the dispatcher would from what the view
// holds: the job exists, p may run it, the parameters fit (config.Job's
// Resolve, the dispatcher's own check). It cannot know the broker's clock,
// the runs open now, or whether p's request will verify: those only the
// broker decides.
func (v *View) Check(job string, params map[string]string, p identity.Principal) (*Verdict, error) {
	j, ok := v.Jobs[job]
	if !ok {
		return nil, &UnknownJobError{fmt.Sprintf("job %q is not in the catalogue the broker %s runs (jobs: %s)%s", job, v.Broker, strings.Join(v.JobNames(), ", "), yamlerr.DidYouMean(job, v.JobNames()))}
	}
	if err := v.MayRun(p, job); err != nil {
		return nil, &NotAllowedError{err.Error()}
	}
	vals, err := j.Config().Resolve(params)
	if err != nil {
		return nil, &ParamError{fmt.Sprintf("job %q, as the broker %s declares it: %v", job, v.Broker, err)}
	}
	return &Verdict{Params: vals, Notes: j.notes(job)}, nil
}

// notes says what a run of the job goes through before it starts.
func (j Job) notes(job string) []string {
	var notes []string
	if len(j.Approvers) > 0 {
		notes = append(notes, fmt.Sprintf("needs approval by one of %s (never the requester) before it starts", strings.Join(j.Approvers, ", ")))
	}
	if j.Concurrency > 0 {
		g := config.Governance{Concurrency: j.Concurrency, OnFull: j.OnFull, ConcurrencyGroup: j.ConcurrencyGroup}
		slots := fmt.Sprintf("takes one of the %d slot(s) of job %s", j.Concurrency, job)
		if j.ConcurrencyGroup != "" {
			slots = fmt.Sprintf("takes one of the %d slot(s) of concurrency group %s", j.Concurrency, j.ConcurrencyGroup)
		}
		switch g.WhenFull() {
		case config.OnFullReject:
			notes = append(notes, slots+": when all are held it is refused")
		case config.OnFullSupersede:
			notes = append(notes, slots+": when all are held it waits, and replaces older waiting runs")
		default:
			notes = append(notes, slots+": when all are held it waits behind the runs that hold them")
		}
	}
	return notes
}
