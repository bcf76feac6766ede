package protocol

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"time"
)

// Kind is what a request asks for.
type Kind string

// Request kinds.
const (
	KindRun     Kind = "run"
	KindCancel  Kind = "cancel"
	KindRelease Kind = "release"
)

// Limits on request fields, enforced by [DecodeRequest].
const (
	MaxJobNameLength   = 64
	MaxParams          = 64
	MaxParamNameLength = 64
	MaxParamValueBytes = 4096
	MaxRequesterField  = 1024
)

var jobNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
var paramNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

// TriggerCommand is one of deploy-trigger's own commands: its name, what
// follows it, and one line on what it does.
type TriggerCommand struct{ Name, Args, Summary string }

// TriggerCommands are deploy-trigger's commands, declared once. deploy-trigger's
// --help, each command's --help, its shell completion and ReservedJobNames
// come from this list; internal/trigger/commands.go adds each command's
// flags and handler (a test checks that every command has them, and shows in
// all four). It lives here, beside the request, because the catalogue
// (internal/config) refuses a job named like a command.
var TriggerCommands = []TriggerCommand{
	{"help", "", "this text"},
	{"version", "", "the version, as --version"},
	{"completion", "bash|zsh|fish", "a shell completion script, e.g. source <(deploy-trigger completion bash)"},
	{"jobs", "[--catalogue FILE]", "the deployed jobs you may run and their parameters (--env NAME), or a configuration file's (--catalogue FILE)"},
	{"runs", "[flags]", "recent runs of the broker, from the run ledger (--help for filters)"},
	{"show", "RUN_ID", "one run: parameters, task, timings, outputs"},
	{"logs", "[--follow] RUN_ID", "a run's output, from its run log"},
	{"attach", "RUN_ID|--key KEY", "get back onto a running run; exits with the job's code"},
	{"approve", "RUN_ID", "approve a run that awaits approval (as one of its job's approvers)"},
	{"reject", "RUN_ID", "refuse a run that awaits approval (as one of its job's approvers)"},
	{"cancel", "RUN_ID", "stop a run (as its requester or an operator); exits 0 once it is stopped"},
}

// ReservedJobNames are deploy-trigger's own commands (TriggerCommands), read
// where a job name would stand ("deploy-trigger help"): no catalogue job may
// take one.
var ReservedJobNames = func() []string {
	names := make([]string, len(TriggerCommands))
	for i, c := range TriggerCommands {
		names[i] = c.Name
	}
	return names
}()

// ValidJobName reports whether name is a well-formed job name:
// lower-case letters, digits and '-', at most 64 characters.
func ValidJobName(name string) bool { return jobNameRE.MatchString(name) }

// ValidParamName reports whether name is a well-formed parameter name.
func ValidParamName(name string) bool { return paramNameRE.MatchString(name) }

// Request is a document from the CI side: the SNS message body.
type Request struct {
	V           int               `json:"v"`
	Kind        Kind              `json:"kind"`
	RunID       string            `json:"run_id"`
	Job         string            `json:"job,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	RequestedAt time.Time         `json:"requested_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	Requester   *Requester        `json:"requester,omitempty"`
	// IdempotencyKey is an optional name the CI side gives the run
	// (idempotency.go), kept in the ledger, by which attach finds it.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Proof is the signed sts:GetCallerIdentity request that proves who sent
	// this request (package identity: Sign, DecodeProof, Verifier). It is
	// opaque here, bounded by MaxProofBytes, and bound to every other field
	// through BindingFields.
	Proof json.RawMessage `json:"proof,omitempty"`
	// RequestDigest, on approve and reject (required there), is the digest
	// of the request the approver was shown: the run's request_hash in the
	// ledger. The dispatcher decides nothing when it differs from the run's.
	RequestDigest string `json:"request_digest,omitempty"`
	// DecisionID, on approve, reject (required there) and cancel (optional:
	// the trigger's own cancel on Ctrl-C sends none), is a fresh ULID under
	// which the dispatcher writes its answer to the run ledger
	// (ledger.Answer), where the deciding deploy-trigger reads it.
	DecisionID string `json:"decision_id,omitempty"`
}

// BindingFields lists every field of the request except the proof, in a
// fixed order, as (name, value) pairs: deploy-trigger feeds them to
// identity.Digest before signing, and the dispatcher recomputes the digest
// from the message it received. audience is the broker topic's ARN. Times
// are RFC 3339 with nanoseconds in UTC; parameters are sorted by name; the
// requester's fields are all listed, empty or not, so that leaving one out
// and sending it empty differ from no other request.
func (r *Request) BindingFields(audience string) [][2]string {
	f := [][2]string{
		{"v", fmt.Sprint(r.V)},
		{"kind", string(r.Kind)},
		{"run_id", r.RunID},
		{"job", r.Job},
		{"params", fmt.Sprint(len(r.Params))},
	}
	names := make([]string, 0, len(r.Params))
	for k := range r.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f = append(f, [2]string{"param:" + k, r.Params[k]})
	}
	f = append(f, [2]string{"requested_at", r.RequestedAt.UTC().Format(time.RFC3339Nano)},
		[2]string{"expires_at", r.ExpiresAt.UTC().Format(time.RFC3339Nano)})
	if q := r.Requester; q == nil {
		f = append(f, [2]string{"requester", "none"})
	} else {
		f = append(f, [2]string{"requester", "present"},
			[2]string{"requester.ci", q.CI}, [2]string{"requester.repository", q.Repository},
			[2]string{"requester.ref", q.Ref}, [2]string{"requester.sha", q.SHA},
			[2]string{"requester.actor", q.Actor}, [2]string{"requester.run_url", q.RunURL},
			[2]string{"requester.pipeline", q.Pipeline}, [2]string{"requester.build", q.Build},
			[2]string{"requester.host", q.Host})
	}
	if r.IdempotencyKey != "" {
		// Only when present: a request without a key binds exactly as
		// before keys existed.
		f = append(f, [2]string{"idempotency_key", r.IdempotencyKey})
	}
	// Likewise only when present (approve, reject, cancel).
	if r.RequestDigest != "" {
		f = append(f, [2]string{"request_digest", r.RequestDigest})
	}
	if r.DecisionID != "" {
		f = append(f, [2]string{"decision_id", r.DecisionID})
	}
	return append(f, [2]string{"audience", audience})
}

// Requester says who asked for a run, as deploy-trigger read it from the CI
// environment: claimed by the client, so audit information only, never used
// for authorization (that is the verified principal of the proof).
type Requester struct {
	CI         string `json:"ci"` // github-actions, jenkins, local
	Repository string `json:"repository,omitempty"`
	Ref        string `json:"ref,omitempty"`
	SHA        string `json:"sha,omitempty"`
	Actor      string `json:"actor,omitempty"`
	RunURL     string `json:"run_url,omitempty"`
	Pipeline   string `json:"pipeline,omitempty"` // Jenkins JOB_NAME, GitHub workflow
	Build      string `json:"build,omitempty"`    // Jenkins BUILD_NUMBER, GitHub run id/attempt
	Host       string `json:"host,omitempty"`
}

// String is a short human form: "github-actions org/app@refs/heads/main by alice".
func (r *Requester) String() string {
	if r == nil {
		return "unknown requester"
	}
	s := r.CI
	if r.Repository != "" {
		s += " " + r.Repository
		if r.Ref != "" {
			s += "@" + r.Ref
		}
	} else if r.Pipeline != "" {
		s += " " + r.Pipeline
		if r.Build != "" {
			s += " #" + r.Build
		}
	}
	if r.Actor != "" {
		s += " by " + r.Actor
	}
	return s
}

// DecodeRequest strictly decodes and validates a request body. It checks the
// document's shape only; whether the job and its parameters are allowed, and
// whether the request has expired, is the catalogue's and the dispatcher's call.
func DecodeRequest(b []byte) (*Request, error) {
	var r Request
	if err := decodeStrict(b, MaxRequestBytes, "request", &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := checkKeys(b, "request"); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks a request's structure.
func (r *Request) Validate() error {
	switch {
	case r.V == 1:
		return fmt.Errorf("request has protocol version 1, from a deploy-trigger that sends no proof of identity; this broker speaks request version %d and answers only verified requests: upgrade deploy-trigger", RequestVersion)
	case r.V != RequestVersion:
		return fmt.Errorf("request has protocol version %d; this broker speaks request version %d (upgrade deploy-trigger or the broker so they match)", r.V, RequestVersion)
	}
	if len(r.Proof) > MaxProofBytes {
		return fmt.Errorf("request %s carries a proof of %d bytes, over the %d-byte limit", r.RunID, len(r.Proof), MaxProofBytes)
	}
	if err := ValidateRunID(r.RunID); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if r.RequestedAt.IsZero() || r.ExpiresAt.IsZero() {
		return fmt.Errorf("request %s must carry requested_at and expires_at", r.RunID)
	}
	if !r.ExpiresAt.After(r.RequestedAt) {
		return fmt.Errorf("request %s expires (%s) before it was made (%s)", r.RunID, r.ExpiresAt.Format(time.RFC3339), r.RequestedAt.Format(time.RFC3339))
	}
	switch r.Kind {
	case KindRun:
		if r.Job == "" {
			return fmt.Errorf("run request %s names no job", r.RunID)
		}
		if !ValidJobName(r.Job) {
			return fmt.Errorf("job name %q is not valid: use lower-case letters, digits and '-', at most %d characters", truncate(r.Job, 80), MaxJobNameLength)
		}
		if len(r.Params) > MaxParams {
			return fmt.Errorf("run request %s has %d parameters, more than the %d allowed", r.RunID, len(r.Params), MaxParams)
		}
		for k, v := range r.Params {
			if !ValidParamName(k) {
				return fmt.Errorf("parameter name %q is not valid: use lower-case letters, digits and '_', starting with a letter", truncate(k, 80))
			}
			if len(v) > MaxParamValueBytes {
				return fmt.Errorf("parameter %q is %d bytes, over the %d-byte limit", k, len(v), MaxParamValueBytes)
			}
		}
		if r.Requester == nil {
			return fmt.Errorf("run request %s has no requester", r.RunID)
		}
		if err := r.Requester.validate(); err != nil {
			return err
		}
		if err := ValidateIdempotencyKey(r.IdempotencyKey); err != nil {
			return fmt.Errorf("run request %s: %w", r.RunID, err)
		}
	case KindCancel, KindRelease, KindApprove, KindReject:
		if r.Job != "" || r.Params != nil || r.Requester != nil || r.IdempotencyKey != "" {
			return fmt.Errorf("%s request %s may carry only v, kind, run_id, timestamps and proof (approve, reject and cancel: their decision fields)", r.Kind, r.RunID)
		}
		return r.validateDecision()
	case "":
		return fmt.Errorf("request %s has no kind; expected run, cancel, release, approve or reject", r.RunID)
	default:
		return fmt.Errorf("request kind %q is unknown; expected run, cancel, release, approve or reject", truncate(string(r.Kind), 40))
	}
	return nil
}

// requestDigestRE is a SHA-256 in lower-case hex (the ledger's request_hash).
var requestDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validateDecision checks the decision fields of approve, reject and cancel
// requests: approve and reject carry both, cancel may carry a decision id,
// release neither.
func (r *Request) validateDecision() error {
	decides := r.Kind == KindApprove || r.Kind == KindReject
	switch {
	case r.Kind == KindRelease && r.DecisionID != "":
		return fmt.Errorf("release request %s may not carry a decision_id", r.RunID)
	case !decides && r.RequestDigest != "":
		return fmt.Errorf("%s request %s may not carry a request_digest", r.Kind, r.RunID)
	case decides && !requestDigestRE.MatchString(r.RequestDigest):
		return fmt.Errorf("%s request %s must carry the request_digest of the run it decides (64 lower-case hex digits): upgrade deploy-trigger, whose approve and reject show the run first", r.Kind, r.RunID)
	case decides && r.DecisionID == "":
		return fmt.Errorf("%s request %s must carry a decision_id (a ULID) under which the broker answers: upgrade deploy-trigger", r.Kind, r.RunID)
	}
	if r.DecisionID != "" {
		if err := ValidateRunID(r.DecisionID); err != nil {
			return fmt.Errorf("%s request %s: decision_id: %w", r.Kind, r.RunID, err)
		}
	}
	return nil
}

func (q *Requester) validate() error {
	if q.CI == "" {
		return fmt.Errorf("requester has no ci field")
	}
	for name, v := range map[string]string{"ci": q.CI, "repository": q.Repository, "ref": q.Ref, "sha": q.SHA,
		"actor": q.Actor, "run_url": q.RunURL, "pipeline": q.Pipeline, "build": q.Build, "host": q.Host} {
		if len(v) > MaxRequesterField {
			return fmt.Errorf("requester field %s is %d bytes, over the %d-byte limit", name, len(v), MaxRequesterField)
		}
		if c, ok := FindControl(v); ok {
			return fmt.Errorf("requester field %s contains a control character (%s)", name, DescribeControl(c))
		}
	}
	return nil
}
