package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// ParamType is a parameter's type.
//
// Adding a parameter type touches this file only, in code: the Type…
// constant, its case in compile (what the declaration needs, and the "use
// string, int, bool or enum" messages) and in Check (what a value must be),
// and any new declaration field on Param; Job.validate (job.go) only if its
// values are fixed in the catalogue, as enum's are. Then config_test.go and
// fuzz_test.go, and the catalogue reference in README.md (jobs.<name>.params)
// and docs/DISPATCHER.md (Validation of a run request). The dispatcher and
// the trigger handle parameter values as checked strings and need nothing.
type ParamType string

// Parameter types.
const (
	TypeString ParamType = "string"
	TypeInt    ParamType = "int"
	TypeBool   ParamType = "bool"
	TypeEnum   ParamType = "enum"
)

// Param declares one job parameter.
type Param struct {
	Type        ParamType `yaml:"type"`
	Description string    `yaml:"description,omitempty"`
	Required    bool      `yaml:"required,omitempty"`
	Default     *string   `yaml:"default,omitempty"`
	// Pattern is a regular expression the whole value must match (string).
	Pattern   string   `yaml:"pattern,omitempty"`
	MinLength int      `yaml:"min_length,omitempty"`
	MaxLength int      `yaml:"max_length,omitempty"`
	Values    []string `yaml:"values,omitempty"` // enum
	Min       *int64   `yaml:"min,omitempty"`    // int
	Max       *int64   `yaml:"max,omitempty"`    // int
	// Secret values are redacted in audit logs and the run ledger.
	Secret bool `yaml:"secret,omitempty"`
	// AllowLeadingDash lets a value that starts with '-' (a negative number,
	// or an option the job author means to let the request choose) begin an
	// argv element. By default such a value is refused there, since the
	// program would read it as an option ("--help", "-rf"). Inside an element
	// after other text ("--count={{n}}") a leading '-' is always allowed.
	AllowLeadingDash bool `yaml:"allow_leading_dash,omitempty"`

	re *regexp.Regexp
}

// compile checks the declaration itself (Validate calls it for every
// parameter) and compiles its pattern for Check.
func (p *Param) compile() []string {
	var errs []string
	switch p.Type {
	case TypeString:
		if p.Pattern == "" && len(p.Values) == 0 {
			errs = append(errs, "a string parameter needs a pattern, so that only expected values reach the job")
		}
		if p.Pattern != "" {
			re, err := regexp.Compile(`^(?:` + p.Pattern + `)$`)
			if err != nil {
				errs = append(errs, fmt.Sprintf("pattern does not compile: %v", err))
			}
			p.re = re
		}
		if p.MaxLength == 0 {
			p.MaxLength = 256
		}
		if p.MaxLength > protocol.MaxParamValueBytes || p.MinLength > p.MaxLength || p.MinLength < 0 {
			errs = append(errs, fmt.Sprintf("min_length/max_length must satisfy 0 ≤ min ≤ max ≤ %d", protocol.MaxParamValueBytes))
		}
	case TypeEnum:
		if len(p.Values) == 0 {
			errs = append(errs, "an enum parameter needs values")
		}
	case TypeInt, TypeBool:
	case "":
		errs = append(errs, "type is missing: use string, int, bool or enum")
	default:
		errs = append(errs, fmt.Sprintf("type %q is unknown: use string, int, bool or enum", p.Type))
	}
	if p.Default != nil {
		if err := p.Check(*p.Default); err != nil {
			errs = append(errs, fmt.Sprintf("default %q is invalid: %v", *p.Default, err))
		}
	}
	if p.Required && p.Default != nil {
		errs = append(errs, "a required parameter cannot have a default")
	}
	if !p.Required && p.Default == nil && p.Type != "" {
		// Otherwise an omitted parameter would reach the command as "", a
		// value never checked against the type, pattern or min_length.
		errs = append(errs, "an optional parameter needs a default: set required: true, or give the default the job runs with (default: \"\" only if the declaration accepts an empty value)")
	}
	return errs
}

// ParamError says a request's parameters do not fit the job's declaration.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

// Check validates one value against the declaration.
func (p *Param) Check(v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("is not valid UTF-8")
	}
	if r, ok := protocol.FindControl(v); ok {
		return fmt.Errorf("contains a control character (%s); values are printable text", protocol.DescribeControl(r))
	}
	switch p.Type {
	case TypeString:
		if len(v) < p.MinLength || (p.MaxLength > 0 && len(v) > p.MaxLength) {
			return fmt.Errorf("must be %d to %d bytes long, not %d", p.MinLength, p.MaxLength, len(v))
		}
		re := p.re
		if re == nil && p.Pattern != "" {
			// A declaration that did not come through Parse: never skip the pattern.
			var err error
			if re, err = regexp.Compile(`^(?:` + p.Pattern + `)$`); err != nil {
				return fmt.Errorf("cannot be checked: the pattern does not compile")
			}
		}
		if re != nil && !re.MatchString(v) {
			return fmt.Errorf("does not match the pattern %s", p.Pattern)
		}
		if len(p.Values) > 0 && !contains(p.Values, v) {
			return fmt.Errorf("must be one of %s", strings.Join(p.Values, ", "))
		}
	case TypeEnum:
		if !contains(p.Values, v) {
			return fmt.Errorf("must be one of %s", strings.Join(p.Values, ", "))
		}
	case TypeInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != v {
			return fmt.Errorf("must be a whole number written in decimal")
		}
		if p.Min != nil && n < *p.Min {
			return fmt.Errorf("must be at least %d", *p.Min)
		}
		if p.Max != nil && n > *p.Max {
			return fmt.Errorf("must be at most %d", *p.Max)
		}
	case TypeBool:
		if v != "true" && v != "false" {
			return fmt.Errorf("must be true or false")
		}
	}
	return nil
}
