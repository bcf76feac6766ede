package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParamError says a request's parameters do not fit the job's declaration.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

// Check validates one value against the declaration.
func (p *Param) Check(v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("contains a control character (newline, NUL, escape…)")
		}
	}
	switch p.Type {
	case TypeString:
		if len(v) < p.MinLength || (p.MaxLength > 0 && len(v) > p.MaxLength) {
			return fmt.Errorf("must be %d to %d bytes long, not %d", p.MinLength, p.MaxLength, len(v))
		}
		if p.re != nil && !p.re.MatchString(v) {
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

// Resolve validates request parameters against the declaration and returns
// the full set, defaults filled in.
func (j Job) Resolve(params map[string]string) (map[string]string, error) {
	var problems []string
	for _, k := range sortedKeys(params) {
		if _, ok := j.Params[k]; !ok {
			declared := sortedKeys(j.Params)
			hint := "this job takes no parameters"
			if len(declared) > 0 {
				hint = "declared: " + strings.Join(declared, ", ")
			}
			problems = append(problems, fmt.Sprintf("parameter %q is not declared (%s)", k, hint))
		}
	}
	out := make(map[string]string, len(j.Params))
	for _, name := range sortedKeys(j.Params) {
		p := j.Params[name]
		v, ok := params[name]
		switch {
		case ok:
			if err := p.Check(v); err != nil {
				problems = append(problems, fmt.Sprintf("parameter %q %v", name, err))
				continue
			}
		case p.Default != nil:
			v = *p.Default
		case p.Required:
			problems = append(problems, fmt.Sprintf("parameter %q is required", name))
			continue
		default:
			v = ""
		}
		out[name] = v
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, &ParamError{Msg: strings.Join(problems, "; ")}
	}
	return out, nil
}

// Render validates params and returns the job's argv with each "{{name}}"
// replaced by its value inside the same argv element.
func (j Job) Render(params map[string]string) ([]string, error) {
	vals, err := j.Resolve(params)
	if err != nil {
		return nil, err
	}
	argv := make([]string, len(j.Command))
	for i, arg := range j.Command {
		argv[i] = placeholderRE.ReplaceAllStringFunc(arg, func(m string) string {
			return vals[placeholderRE.FindStringSubmatch(m)[1]]
		})
	}
	return argv, nil
}

// RedactNames lists the environment variables whose values the runner must
// redact: the job's secrets and its redact list.
func (j Job) RedactNames() []string {
	names := append([]string(nil), j.Redact...)
	names = append(names, sortedKeys(j.Secrets)...)
	sort.Strings(names)
	return names
}

// SecretParams lists parameter names declared secret.
func (j Job) SecretParams() map[string]bool {
	m := map[string]bool{}
	for k, p := range j.Params {
		if p.Secret {
			m[k] = true
		}
	}
	return m
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
