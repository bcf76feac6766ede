package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/identity"
)

// Concurrency policies: what happens to a run of a job whose concurrency
// slots are all held (Governance.OnFull).
const (
	// OnFullQueue: the run waits in the ledger and starts when a slot frees.
	OnFullQueue = "queue"
	// OnFullReject: the run is refused (241) naming the run that holds the slot.
	OnFullReject = "reject"
	// OnFullSupersede: the run waits like queue and replaces every older
	// waiting run of its own job in the group (they are refused as
	// superseded); another job's waiting run and a running run are never
	// touched.
	OnFullSupersede = "supersede"
)

// Governance is what a job declares about who may run it when: inline in
// Job, so the catalogue keys sit beside the job's others.
type Governance struct {
	// Concurrency is how many runs of the job (or of its concurrency group)
	// may hold a slot at once; 0 means no limit.
	Concurrency int `yaml:"concurrency,omitempty"`
	// OnFull is queue (default), reject or supersede.
	OnFull string `yaml:"on_full,omitempty"`
	// ConcurrencyGroup shares the slots among every job that names it
	// (e.g. everything that touches the production database).
	ConcurrencyGroup string `yaml:"concurrency_group,omitempty"`
	// Approvers: a run waits until one of these principals (patterns as
	// allowed_principals) approves it; never the run's own requester.
	Approvers []string `yaml:"approvers,omitempty"`
	// Warm is how many warm single-use runners the dispatcher keeps running
	// for the job (0: none, every run starts a new task). Each is a task of
	// the job's size that runs all the time: it costs as much as a task
	// that never stops (docs/DISPATCHER.md, "Warm runners").
	Warm int `yaml:"warm,omitempty"`
}

// MaxWarm bounds a job's warm runners: each is a Fargate task that runs
// all the time, and a burst beyond the pool still starts cold tasks.
const MaxWarm = 20

var groupNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Limited reports whether the job's runs take a concurrency slot.
func (g Governance) Limited() bool { return g.Concurrency > 0 }

// SlotGroup names the slots a job's runs take: its concurrency group, or
// the job's own.
func (g Governance) SlotGroup(job string) string {
	if g.ConcurrencyGroup != "" {
		return "group:" + g.ConcurrencyGroup
	}
	return "job:" + job
}

// WhenFull is OnFull with its default.
func (g Governance) WhenFull() string {
	if g.OnFull == "" {
		return OnFullQueue
	}
	return g.OnFull
}

func (j *Job) validateGovernance() []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	g := j.Governance
	switch {
	case g.Concurrency < 0:
		bad("concurrency %d must be at least 1 (or left out for no limit)", g.Concurrency)
	case g.Concurrency == 0 && (g.OnFull != "" || g.ConcurrencyGroup != ""):
		bad("on_full and concurrency_group need concurrency (e.g. concurrency: 1)")
	}
	if g.Warm < 0 || g.Warm > MaxWarm {
		bad("warm %d must be between 0 and %d (each warm runner is a task that runs all the time; a burst beyond them starts new tasks as without warm)", g.Warm, MaxWarm)
	}
	switch g.OnFull {
	case "", OnFullQueue, OnFullReject, OnFullSupersede:
	default:
		bad("on_full %q must be queue, reject or supersede", g.OnFull)
	}
	if g.ConcurrencyGroup != "" && !groupNameRE.MatchString(g.ConcurrencyGroup) {
		bad("concurrency_group %q must be lower-case letters, digits and '-', starting with a letter", g.ConcurrencyGroup)
	}
	for _, p := range g.Approvers {
		if err := identity.ValidatePattern(p); err != nil {
			bad("approvers entry %q: %s (give a full role or user ARN with its account, e.g. arn:aws:iam::111122223333:role/release-manager)", p, strings.TrimPrefix(err.Error(), "identity: "))
		}
	}
	if len(g.Approvers) > 0 && len(j.SecretParams()) > 0 {
		bad("approvers keep a waiting run's request in the run ledger, which never holds secret values: a job with secret parameters cannot require approval")
	}
	if g.Concurrency > 0 && g.WhenFull() != OnFullReject && len(j.SecretParams()) > 0 {
		// A waiting run's request is kept in the ledger until it starts;
		// the ledger never holds secret values.
		bad("on_full %s keeps a waiting run's request in the run ledger, which never holds secret values: a job with secret parameters must use on_full: reject", g.WhenFull())
	}
	return errs
}

// validateGroups checks that the jobs of one concurrency group agree on its
// size and on its on_full policy: a group has one queue, so one rule for it
// (with two, which job's rule a newcomer applies would decide whether the
// other job's waiting runs are superseded).
func (c *Config) validateGroups() []string {
	sizes := map[string]map[string][]string{}
	policies := map[string]map[string][]string{}
	add := func(m map[string]map[string][]string, group, value, job string) {
		if m[group] == nil {
			m[group] = map[string][]string{}
		}
		m[group][value] = append(m[group][value], job)
	}
	for _, name := range c.JobNames() {
		g := c.Jobs[name].Governance
		if g.ConcurrencyGroup == "" || g.Concurrency <= 0 {
			continue
		}
		add(sizes, g.ConcurrencyGroup, fmt.Sprint(g.Concurrency), name)
		add(policies, g.ConcurrencyGroup, g.WhenFull(), name)
	}
	var errs []string
	groups := make([]string, 0, len(sizes))
	for g := range sizes {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		if len(sizes[g]) > 1 {
			errs = append(errs, fmt.Sprintf("concurrency_group %q: its jobs declare different concurrency (%s); give them all the same", g, byValue(sizes[g])))
		}
		if len(policies[g]) > 1 {
			errs = append(errs, fmt.Sprintf("concurrency_group %q: its jobs declare different on_full (%s); a group has one queue and one on_full: give them all the same", g, byValue(policies[g])))
		}
	}
	return errs
}

// byValue lists which jobs declare which value: "1: a, c; 2: b".
func byValue(m map[string][]string) string {
	vals := make([]string, 0, len(m))
	for v := range m {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	parts := make([]string, 0, len(vals))
	for _, v := range vals {
		parts = append(parts, v+": "+strings.Join(m[v], ", "))
	}
	return strings.Join(parts, "; ")
}
