package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Statement is one IAM policy statement of a job's task role.
type Statement struct {
	Sid       string                    `yaml:"sid,omitempty"`
	Effect    string                    `yaml:"effect,omitempty"` // Allow (default) or Deny
	Actions   []string                  `yaml:"actions"`
	Resources []string                  `yaml:"resources"`
	Condition map[string]map[string]any `yaml:"condition,omitempty"`
	// WildcardResourceReason says why an Allow statement grants resource "*"
	// without a condition (e.g. "ec2:DescribeInstances has no resource-level
	// permissions"). Without a condition or a reason, "*" is refused.
	WildcardResourceReason string `yaml:"wildcard_resource_reason,omitempty"`
}

// An Allow statement's action: a service prefix and an action name, which
// may end with one '*' after at least one character ("s3:Get*"). A Deny may
// use wildcards anywhere after the prefix: it takes away, never grants.
var allowActionRE = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9]+\*?$`)

var denyActionRE = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9*?]+$`)

var conditionOperatorRE = regexp.MustCompile(`^(ForAllValues:|ForAnyValue:)?[A-Za-z]+$`)

// validate checks one statement of a job's policy. An Allow statement may
// not grant a whole service, use a wildcard inside an action name, or grant
// resource "*" without a condition or a stated reason.
func (s *Statement) validate() []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if s.Effect != "Allow" && s.Effect != "Deny" {
		bad("effect must be Allow or Deny")
	}
	if len(s.Actions) == 0 || len(s.Resources) == 0 {
		bad("needs actions and resources")
	}
	for _, a := range s.Actions {
		switch {
		case a == "*" || strings.HasSuffix(a, ":*") && s.Effect == "Allow":
			bad("action %q grants a whole service; list the actions the job needs", a)
		case s.Effect == "Deny" && denyActionRE.MatchString(a), s.Effect != "Deny" && allowActionRE.MatchString(a):
		case s.Effect != "Deny" && strings.ContainsAny(a, "*?") && denyActionRE.MatchString(a):
			bad("action %q has a wildcard inside it; list the actions, or use one '*' at the end of an action prefix, as in \"s3:Get*\"", a)
		default:
			bad("action %q is not \"service:Action\", e.g. \"s3:PutObject\"", a)
		}
	}
	wild := false
	for _, r := range s.Resources {
		switch {
		case r == "*":
			wild = true
		case !strings.HasPrefix(r, "arn:"):
			bad("resource %q must be an ARN (or \"*\")", r)
		case anyResourceARN(r):
			wild = true // "arn:*", "arn:aws:*:*:*:*", "arn:aws:s3:::*": as broad as "*"
		}
	}
	if wild && s.Effect != "Deny" && len(s.Condition) == 0 && strings.TrimSpace(s.WildcardResourceReason) == "" {
		bad("grants resource \"*\": name the resources' ARNs; if an action has no resource-level permissions, add a condition or say why in wildcard_resource_reason")
	}
	if s.WildcardResourceReason != "" && !wild {
		bad("has a wildcard_resource_reason but no resource \"*\"")
	}
	for _, op := range sortedKeys(s.Condition) {
		if !conditionOperatorRE.MatchString(op) {
			bad("condition operator %q is not an IAM condition operator such as StringEquals or ForAnyValue:StringLike", op)
			continue
		}
		keys := s.Condition[op]
		if len(keys) == 0 {
			bad("condition %s names no condition key", op)
		}
		for _, k := range sortedKeys(keys) {
			if strings.TrimSpace(k) == "" {
				bad("condition %s has an empty condition key", op)
			} else if !conditionValue(keys[k]) {
				bad("condition %s %q must have a string, number or boolean value, or a non-empty list of them", op, k)
			}
		}
	}
	return errs
}

func conditionValue(v any) bool {
	switch v := v.(type) {
	case string, bool, int, int64, uint64, float64:
		return true
	case []any:
		if len(v) == 0 {
			return false
		}
		for _, x := range v {
			switch x.(type) {
			case string, bool, int, int64, uint64, float64:
			default:
				return false
			}
		}
		return true
	}
	return false
}

// anyResourceARN reports whether an ARN pattern matches every resource of
// its service, or of every service, or in every account: "arn:*",
// "arn:aws:*:…", "arn:aws:s3:::*", "arn:aws:iam::*:role/*". Such a
// resource is as broad as "*" and needs the same justification.
func anyResourceARN(arn string) bool {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return strings.Contains(arn, "*")
	}
	service, account, resource := parts[2], parts[4], parts[5]
	switch {
	case strings.ContainsAny(service, "*?"):
		return true
	case strings.Trim(resource, "*/:") == "":
		return true
	case strings.ContainsAny(account, "*?") && strings.HasSuffix(resource, "*"):
		return true
	}
	return false
}
