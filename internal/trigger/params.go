package trigger

import (
	"errors"
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// parseParams turns positional "key=value" arguments into job parameters.
// A value may contain '=' and may be empty; a key may not repeat.
func parseParams(args []string) (map[string]string, error) {
	p, _, err := parseParamArgs(args, func(string) string { return "" })
	return p, err
}

// parseParamArgs is parseParams that also reads name@env=VAR: the value of
// parameter name is the environment variable VAR's, and it is secret
// (fromEnv). Errors never quote a value: it may be a secret.
func parseParamArgs(args []string, getenv func(string) string) (params map[string]string, fromEnv map[string]bool, err error) {
	if len(args) == 0 {
		return nil, nil, nil
	}
	params = make(map[string]string, len(args))
	fromEnv = map[string]bool{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, nil, fmt.Errorf("parameter %q is not in key=value form: %s", short(a, 60), paramHint(a))
		}
		if k == "" {
			return nil, nil, errors.New("an argument begins with '=': write each parameter as name=value")
		}
		if name, ok := strings.CutSuffix(k, "@env"); ok {
			if !protocol.ValidParamName(name) {
				return nil, nil, fmt.Errorf("parameter name %q is not valid: use lower-case letters, digits and '_', starting with a letter", short(name, 60))
			}
			if v == "" {
				return nil, nil, fmt.Errorf("parameter %s@env= names no variable: write %s@env=VARIABLE", name, name)
			}
			val := getenv(v)
			if val == "" {
				return nil, nil, fmt.Errorf("parameter %s@env=%s: the environment variable %s is empty or unset", name, short(v, 60), short(v, 60))
			}
			k, fromEnv[name] = name, true
			v = val
		}
		if !protocol.ValidParamName(k) {
			return nil, nil, fmt.Errorf("parameter name %q is not valid: use lower-case letters, digits and '_', starting with a letter", short(k, 60))
		}
		if _, dup := params[k]; dup {
			return nil, nil, fmt.Errorf("parameter %q is given twice: give each parameter once", k)
		}
		// A control character (a line break above all: a PEM key or JSON
		// credentials in a variable) is refused here, before anything is
		// printed: ::add-mask:: hides a value line by line, and the broker
		// would refuse the value anyway.
		if c, bad := protocol.FindControl(v); bad {
			return nil, nil, fmt.Errorf("the value of parameter %q contains a control character (%s), which parameter values may not hold", k, protocol.DescribeControl(c))
		}
		if len(v) > protocol.MaxParamValueBytes {
			return nil, nil, fmt.Errorf("parameter %q is %d bytes, over the %d-byte limit", k, len(v), protocol.MaxParamValueBytes)
		}
		params[k] = v
	}
	if len(params) > protocol.MaxParams {
		return nil, nil, fmt.Errorf("%d parameters given, more than the %d allowed", len(params), protocol.MaxParams)
	}
	return params, fromEnv, nil
}

// paramHint says how to write a bare argument as a parameter, from what was
// typed: a name ("version") wants a value, a value ("1.4.2") a name.
func paramHint(a string) string {
	if protocol.ValidParamName(a) {
		return fmt.Sprintf("write it as %s=VALUE (see deploy-trigger jobs for the job's parameters)", a)
	}
	return fmt.Sprintf("write it as NAME=%s, naming the parameter (see deploy-trigger jobs for the job's parameters)", short(a, 60))
}

// short truncates s for an error message.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
