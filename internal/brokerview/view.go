// Package brokerview is the broker's published view (issue 25): what
// deploy-trigger needs to know of a deployed broker so that `--env NAME`
// is enough for every command — where the run ledger, the run log group
// and the reader role are, and the catalogue's public face (jobs,
// descriptions, parameter declarations, who may run each, approvals,
// concurrency).
//
// The stack writes it (infra/internal/broker/view.go) and local mode
// writes it (localbroker.Provision), both from Build; deploy-trigger reads
// it with Get. It is one item in a table of its own named after the broker
// (TableName), so that the topic ARN alone says where it is, and its
// readers' grant (dynamodb:GetItem on that table, for that one key) reaches
// nothing else: not the run ledger, not another item. The same table holds
// the run pointers (pointer.go), under keys of their own and a grant of
// their own.
//
// What is in it is readable by every trusted principal, viewer and
// approver, so it holds nothing they may not know: never a command, an
// image, a role of a job, a secret's ARN, an environment value or a secret
// parameter's default; of a secret parameter only that it is secret and
// whether it has a default.
package brokerview

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Version is the view's schema version: a reader refuses any other.
const Version = 1

// The view's table: one item, key attribute KeyAttr = KeyValue, the view's
// JSON in DocAttr.
const (
	KeyAttr  = "view"
	KeyValue = "public/v1"
	DocAttr  = "document"
)

// TableName is the view table's name for a broker (its topic's name):
// protocol.ViewTableName.
func TableName(broker string) string { return protocol.ViewTableName(broker) }

// TableARN is the view table's ARN, from the broker topic's partition,
// region, account and name: what deploy-trigger passes as TableName
// (DynamoDB accepts a table ARN there, and needs it for another account's
// table).
func TableARN(partition, region, account, broker string) string {
	return fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", partition, region, account, TableName(broker))
}

// View is the published view.
type View struct {
	V            int    `json:"v"`
	Broker       string `json:"broker"`
	AccountAlias string `json:"account_alias,omitempty"`
	// Where the history commands read: the run ledger table, the run log
	// group, and the role the catalogue's viewers assume for them (empty:
	// the broker has no viewers, or, in local mode, no IAM).
	LedgerTable   string `json:"ledger_table"`
	RunLogGroup   string `json:"run_log_group"`
	ReaderRoleARN string `json:"reader_role_arn,omitempty"`
	// Who may do what (identity patterns, as the configuration gives them):
	// trusted_principals (plus the stack's GitHub trigger role), operators
	// (cancel and release any run) and viewers (read the history).
	TrustedPrincipals []string       `json:"trusted_principals"`
	Operators         []string       `json:"operators,omitempty"`
	Viewers           []string       `json:"viewers,omitempty"`
	Jobs              map[string]Job `json:"jobs"`
}

// Job is one job's public face.
type Job struct {
	Description string           `json:"description,omitempty"`
	Timeout     string           `json:"timeout"` // a Go duration, e.g. "15m0s"
	Params      map[string]Param `json:"params,omitempty"`
	// Leading lists, per command element a value may begin, the parameters
	// whose values may begin it (config.Job.LeadingParams): the leading-dash
	// rule, without the command.
	Leading           [][]string `json:"leading,omitempty"`
	AllowedPrincipals []string   `json:"allowed_principals,omitempty"`
	Approvers         []string   `json:"approvers,omitempty"`
	Concurrency       int        `json:"concurrency,omitempty"`
	ConcurrencyGroup  string     `json:"concurrency_group,omitempty"`
	OnFull            string     `json:"on_full,omitempty"`
}

// Param is a parameter's declaration (config.Param), a secret one's
// default left out.
type Param struct {
	Type             string   `json:"type"`
	Description      string   `json:"description,omitempty"`
	Required         bool     `json:"required,omitempty"`
	Default          *string  `json:"default,omitempty"`
	HasDefault       bool     `json:"has_default,omitempty"` // set for every default; a secret's value is never published
	Pattern          string   `json:"pattern,omitempty"`
	MinLength        int      `json:"min_length,omitempty"`
	MaxLength        int      `json:"max_length,omitempty"`
	Values           []string `json:"values,omitempty"`
	Min              *int64   `json:"min,omitempty"`
	Max              *int64   `json:"max,omitempty"`
	Secret           bool     `json:"secret,omitempty"`
	AllowLeadingDash bool     `json:"allow_leading_dash,omitempty"`
}

// Locations are where the stack (or local mode) put what the view names.
type Locations struct {
	LedgerTable   string
	RunLogGroup   string
	ReaderRoleARN string
	// ExtraTrusted are principals the dispatcher trusts besides
	// trusted_principals (the stack's GitHub trigger role).
	ExtraTrusted []string
}

// Build makes the view of a validated configuration.
func Build(cfg *config.Config, loc Locations) View {
	v := View{V: Version, Broker: cfg.Broker.Name, AccountAlias: cfg.Broker.AccountAlias,
		LedgerTable: loc.LedgerTable, RunLogGroup: loc.RunLogGroup, ReaderRoleARN: loc.ReaderRoleARN,
		TrustedPrincipals: append(append([]string{}, cfg.TrustedPrincipals...), loc.ExtraTrusted...),
		Operators:         cfg.Operators, Viewers: cfg.ViewerPrincipals(), Jobs: map[string]Job{}}
	for _, name := range cfg.JobNames() {
		j := cfg.Jobs[name]
		pj := Job{Description: j.Description, Timeout: j.Timeout.D().String(), Leading: j.LeadingParams(),
			AllowedPrincipals: j.AllowedPrincipals, Approvers: j.Approvers, Concurrency: j.Concurrency,
			ConcurrencyGroup: j.ConcurrencyGroup, OnFull: j.OnFull}
		if len(j.Params) > 0 {
			pj.Params = map[string]Param{}
		}
		for pn, p := range j.Params {
			vp := Param{Type: string(p.Type), Description: p.Description, Required: p.Required, HasDefault: p.Default != nil,
				Pattern: p.Pattern, MinLength: p.MinLength, MaxLength: p.MaxLength, Values: p.Values, Min: p.Min, Max: p.Max,
				Secret: p.Secret, AllowLeadingDash: p.AllowLeadingDash}
			if !p.Secret {
				vp.Default = p.Default
			}
			pj.Params[pn] = vp
		}
		v.Jobs[name] = pj
	}
	return v
}

// JobNames are the view's jobs, sorted.
func (v *View) JobNames() []string { return sortedKeys(v.Jobs) }

// secretDefault stands for a secret parameter's unpublished default when a
// view's job is checked: non-empty and not starting with '-', as the
// configuration's validation requires of a default that begins a command
// element (an empty secret default is the one case checked less closely).
const secretDefault = "(secret default)"

// Config is the job as internal/config declares it, enough for
// config.Job.Resolve: the same checks the dispatcher makes of a request's
// parameters, from the published declarations.
func (j Job) Config() config.Job {
	cj := config.Job{Params: map[string]config.Param{}}
	for pn, p := range j.Params {
		cp := config.Param{Type: config.ParamType(p.Type), Description: p.Description, Required: p.Required, Default: p.Default,
			Pattern: p.Pattern, MinLength: p.MinLength, MaxLength: p.MaxLength, Values: p.Values, Min: p.Min, Max: p.Max,
			Secret: p.Secret, AllowLeadingDash: p.AllowLeadingDash}
		if p.HasDefault && p.Default == nil {
			d := secretDefault
			cp.Default = &d
		}
		cj.Params[pn] = cp
	}
	for _, names := range j.Leading {
		cj.Command = append(cj.Command, "{{"+strings.Join(names, "}}{{")+"}}")
	}
	return cj
}

// TimeoutDuration is the job's timeout.
func (j Job) TimeoutDuration() time.Duration {
	d, _ := time.ParseDuration(j.Timeout)
	return d
}
