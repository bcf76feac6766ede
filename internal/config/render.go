package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

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

// Resolve validates request parameters against the declaration and returns
// the full set, defaults filled in. A value that would begin an argv element
// with '-' is refused unless its parameter has allow_leading_dash: the
// program would read it as an option.
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
		default:
			// Parse refuses an optional parameter without a default, so
			// every value that reaches the command has been checked.
			problems = append(problems, fmt.Sprintf("parameter %q is required", name))
			continue
		}
		out[name] = v
	}
	if len(problems) == 0 {
		dashed := map[string]bool{}
		for _, arg := range j.Command {
			if name, ok := j.leadingDash(arg, out); ok && !dashed[name] {
				dashed[name] = true
				problems = append(problems, fmt.Sprintf("parameter %q may not start with '-': it begins an argument of the command, which the program would read as an option", name))
			}
		}
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

// leadingDash reports the parameter whose value, from vals, would make argv
// element arg start with '-' although the parameter does not allow it.
func (j Job) leadingDash(arg string, vals map[string]string) (string, bool) {
	pos := 0
	for _, l := range placeholderRE.FindAllStringSubmatchIndex(arg, -1) {
		if l[0] != pos {
			return "", false // the element starts with the catalogue's own text
		}
		name := arg[l[2]:l[3]]
		if v := vals[name]; v != "" {
			return name, v[0] == '-' && !j.Params[name].AllowLeadingDash
		}
		pos = l[1] // an empty value: what follows begins the element
	}
	return "", false
}

// leadingParams lists the parameters whose value may begin argv element arg:
// the placeholder at its start, and the ones right after it if the earlier
// values are empty.
func leadingParams(arg string) []string {
	var names []string
	pos := 0
	for _, l := range placeholderRE.FindAllStringSubmatchIndex(arg, -1) {
		if l[0] != pos {
			break
		}
		names = append(names, arg[l[2]:l[3]])
		pos = l[1]
	}
	return names
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
