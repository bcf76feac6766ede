package brokerview

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// MaxBytes bounds the view's JSON: well under DynamoDB's 400 KB item, and
// far above any catalogue the stack can deploy (the dispatcher's 4 KB of
// task revisions bound the number of jobs).
const MaxBytes = 256 * 1024

// Encode is the view's JSON, refused over MaxBytes.
func Encode(v View) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("the broker's published view is %d bytes, over the %d-byte limit: shorten descriptions or patterns, or split the catalogue over two brokers", len(b), MaxBytes)
	}
	return b, nil
}

// Decode strictly decodes a view: size limit, one JSON object, unknown
// fields refused, this schema version, and every field valid.
func Decode(b []byte) (*View, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("the broker's published view is %d bytes, over the %d-byte limit", len(b), MaxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v View
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the broker's published view is not valid: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the broker's published view has data after its JSON object")
	}
	if v.V != Version {
		return nil, fmt.Errorf("the broker's published view has schema version %d; this deploy-trigger reads version %d: use the deploy-trigger release that matches the broker", v.V, Version)
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("the broker's published view is not valid: %w", err)
	}
	return &v, nil
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,512}$`)
	groupRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// brokerRE is internal/config's rule for broker.name.
	brokerRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)
)

func (v *View) validate() error {
	if !brokerRE.MatchString(v.Broker) {
		return fmt.Errorf("broker name %q is not valid", clip(v.Broker))
	}
	if !nameRE.MatchString(v.LedgerTable) || !nameRE.MatchString(v.RunLogGroup) {
		return errors.New("the ledger table or run log group name is missing or not valid")
	}
	if v.ReaderRoleARN != "" && !validRoleARN(v.ReaderRoleARN) {
		return fmt.Errorf("reader role %q is not a role ARN", clip(v.ReaderRoleARN))
	}
	for _, list := range [][]string{v.TrustedPrincipals, v.Operators, v.Viewers} {
		if err := validPatterns(list, true); err != nil {
			return err
		}
	}
	if len(v.Jobs) == 0 {
		return errors.New("it names no jobs")
	}
	for _, name := range v.JobNames() {
		if err := v.Jobs[name].validate(name); err != nil {
			return fmt.Errorf("job %q: %w", clip(name), err)
		}
	}
	return nil
}

func (j Job) validate(name string) error {
	if !protocol.ValidJobName(name) {
		return errors.New("the name is not a job name")
	}
	if d, err := time.ParseDuration(j.Timeout); err != nil || d <= 0 {
		return fmt.Errorf("timeout %q is not a duration", clip(j.Timeout))
	}
	if err := validPatterns(j.AllowedPrincipals, false); err != nil {
		return err
	}
	if err := validPatterns(j.Approvers, false); err != nil {
		return err
	}
	if j.Concurrency < 0 || (j.ConcurrencyGroup != "" && !groupRE.MatchString(j.ConcurrencyGroup)) {
		return errors.New("concurrency or concurrency_group is not valid")
	}
	switch j.OnFull {
	case "", config.OnFullQueue, config.OnFullReject, config.OnFullSupersede:
	default:
		return fmt.Errorf("on_full %q is not queue, reject or supersede", clip(j.OnFull))
	}
	for _, pn := range sortedKeys(j.Params) {
		p := j.Params[pn]
		if !protocol.ValidParamName(pn) {
			return fmt.Errorf("parameter name %q is not valid", clip(pn))
		}
		switch config.ParamType(p.Type) {
		case config.TypeString, config.TypeInt, config.TypeBool, config.TypeEnum:
		default:
			return fmt.Errorf("parameter %q has unknown type %q", pn, clip(p.Type))
		}
		if p.Pattern != "" {
			if _, err := regexp.Compile(`^(?:` + p.Pattern + `)$`); err != nil {
				return fmt.Errorf("parameter %q: the pattern does not compile", pn)
			}
		}
		if p.Secret && p.Default != nil {
			return fmt.Errorf("parameter %q is secret but its default is published", pn)
		}
		if p.Default != nil && !p.HasDefault {
			return fmt.Errorf("parameter %q has a default but not has_default", pn)
		}
	}
	for _, names := range j.Leading {
		if len(names) == 0 {
			return errors.New("leading has an empty element")
		}
		for _, n := range names {
			if _, ok := j.Params[n]; !ok {
				return fmt.Errorf("leading names %q, which is not a parameter", clip(n))
			}
		}
	}
	return nil
}

// validPatterns checks identity patterns (account ids too, where accounts).
func validPatterns(list []string, accounts bool) error {
	for _, p := range list {
		if accounts && accountRE.MatchString(p) {
			continue
		}
		if accounts && rootRE.MatchString(p) {
			continue
		}
		if err := identity.ValidatePattern(p); err != nil {
			return fmt.Errorf("principal %q is not valid", clip(p))
		}
	}
	return nil
}

var (
	accountRE = regexp.MustCompile(`^\d{12}$`)
	rootRE    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:root$`)
	roleRE    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
)

func validRoleARN(s string) bool { return roleRE.MatchString(s) }

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
