package config

import (
	"fmt"
	"sort"
	"strings"
)

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
	return j.Argv(vals), nil
}

// Argv returns the job's argv with each "{{name}}" replaced by its value
// from vals inside the same argv element. vals must come from Resolve: Argv
// checks nothing. Render is Resolve and then Argv.
func (j Job) Argv(vals map[string]string) []string {
	argv := make([]string, len(j.Command))
	for i, arg := range j.Command {
		argv[i] = placeholderRE.ReplaceAllStringFunc(arg, func(m string) string {
			return vals[placeholderRE.FindStringSubmatch(m)[1]]
		})
	}
	return argv
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

// LeadingParams lists, for each element of the command that a parameter's
// value may begin, those parameters (leadingParams): all Resolve's
// leading-dash rule needs to know of the command. The broker's published
// view (internal/brokerview) carries it instead of the command.
func (j Job) LeadingParams() [][]string {
	var out [][]string
	for _, arg := range j.Command {
		if names := leadingParams(arg); len(names) > 0 {
			out = append(out, names)
		}
	}
	return out
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
