package protocol

import (
	"fmt"
	"regexp"
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
}

// Requester says who asked for a run: filled in by deploy-trigger from the CI
// environment. It is audit information, never used for authorization.
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
	if r.V != Version {
		return fmt.Errorf("request has protocol version %d; this broker speaks version %d (upgrade deploy-trigger or the broker so they match)", r.V, Version)
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
	case KindCancel, KindRelease:
		if r.Job != "" || r.Params != nil || r.Requester != nil || r.IdempotencyKey != "" {
			return fmt.Errorf("%s request %s may carry only v, kind, run_id and timestamps", r.Kind, r.RunID)
		}
	case "":
		return fmt.Errorf("request %s has no kind; expected run, cancel or release", r.RunID)
	default:
		return fmt.Errorf("request kind %q is unknown; expected run, cancel or release", truncate(string(r.Kind), 40))
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
