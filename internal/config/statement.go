package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
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

var sidRE = regexp.MustCompile(`^[A-Za-z0-9]*$`)

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
	if !sidRE.MatchString(s.Sid) {
		bad("sid %q may hold only letters and digits (IAM statement ids are [A-Za-z0-9]*)", s.Sid)
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

// RolePath is the IAM path of the broker's own roles (every job's task
// role, the task execution role and the dispatcher's role):
// "/deploy-broker/<broker>/". Every job role is denied iam:PassRole on
// "role/deploy-broker/<broker>/*", so that no job can start a task (or a
// function) with another job's role, or the broker's.
func RolePath(broker string) string { return "/deploy-broker/" + broker + "/" }

// brokerGuard is what every job role is denied on the broker's own
// resources (the stack's Denies): registering revisions in the broker's
// task definition families (which would change what the broker runs, had
// the dispatcher not pinned the revisions), changing, reading or deleting
// run queues (another run's feedback), the run ledger, the published view
// table, the warm runners' inboxes, running or starting a task of the
// broker's families (another job's pinned revision, under whatever role),
// passing one of the broker's roles, the dispatcher function, the broker
// cluster and its tasks, and the run log. A job's policy
// may not grant them there: the grant would be dead, and says the job
// expects to do what the broker forbids.
type brokerGuard struct {
	service string
	// actions are the guarded action names; nil means every action but the
	// account-wide List*/Describe* ones, which no Deny on a table reaches.
	actions []string
	// sample is a resource of the broker's, the part of its ARN after the
	// account, that a statement's resource pattern must not match.
	sample func(broker string) string
	what   string
	// allowStar lets "*" (and ARNs as broad) through: for an action that
	// may have no resource-level permissions, "*" is the only resource a
	// job that really needs it can name, and refusing it would refuse every
	// job that deploys ECS services. Only a resource naming the broker's own
	// names is refused then.
	allowStar bool
}

var brokerGuards = []brokerGuard{
	{"ecs", []string{"RegisterTaskDefinition", "RunTask", "StartTask"},
		func(b string) string { return "task-definition/" + b + "-job:1" }, "the broker's task definition families", true},
	// SendMessage too: the stack grants each job sending to its own runs'
	// queues only (by their job tag); a grant by name pattern would reach
	// every job's runs.
	{"sqs", []string{"AddPermission", "ChangeMessageVisibility", "DeleteMessage", "DeleteQueue", "PurgeQueue",
		"ReceiveMessage", "RemovePermission", "SendMessage", "SendMessageBatch", "SetQueueAttributes", "TagQueue", "UntagQueue"},
		func(b string) string { return b + "-01JDRUN0000000000000000000.fifo" }, "the broker's run queues", false},
	{"dynamodb", nil,
		func(b string) string { return "table/" + b + "-LedgerTable0A1B2C3D-ABCDEFGHIJKL" }, "the run ledger", false},
	// Security review F3: the published view table (its name is fixed),
	// whose run pointers say which queue a run's trigger tails: a grant of
	// its resource policy (DeleteResourcePolicy lifts the Deny of item
	// writes), its items or the table. NeverTouchTheView denies every job
	// role dynamodb:* there.
	{"dynamodb", nil,
		func(b string) string { return "table/" + protocol.ViewTableName(b) }, "the broker's published view table (its run pointers and deploy-trigger's view)", false},
	// The warm runners' inboxes (an assignment holds its run's secret
	// parameters): every job's deployment role is denied sqs:* there
	// (NeverTouchWarmInboxes). Every SQS action has resource-level
	// permissions: "*" is refused, as for the run queues.
	{"sqs", nil,
		func(b string) string { return protocol.InboxName(b, "warm-01JDWARM000000000000000000") }, "the broker's warm runners' inboxes", false},
	// iam:PassRole has resource-level permissions: "*" is refused, a job
	// names the roles it passes.
	{"iam", []string{"PassRole"},
		func(b string) string { return "role" + RolePath(b) + b + "-JobxTaskRole-ABCDEFGHIJKL" }, "the broker's roles (another job's task role)", false},
	// Issue 22: the dispatcher function (by its fixed name), the broker
	// cluster and its tasks, the run log group (by the name it has with
	// run_log_key; without, CloudFormation names it and only the stack's
	// Deny stands). "*" passes: jobs that deploy functions, services or log
	// groups of their own can name nothing narrower for some actions.
	{"lambda", nil, func(b string) string { return "function:" + b + "-dispatcher" }, "the dispatcher function", true},
	// The broker's topic (its name is the broker's): a job publishing run
	// requests (NeverPublishToTheBroker). "*" passes, as for the others.
	{"sns", []string{"Publish"}, func(b string) string { return b }, "the broker's topic (run requests)", true},
	{"ecs", nil, func(b string) string { return "cluster/" + b }, "the broker cluster", true},
	{"ecs", nil, func(b string) string { return "task/" + b + "/0123456789abcdef0123456789abcdef" }, "the broker cluster's tasks (the runs)", true},
	{"logs", nil, func(b string) string { return "log-group:/deploy-broker/" + b + "/runs:*" }, "the run log group", true},
}

// guardedByBroker returns a problem for every action of an Allow statement
// that grants what every job role is denied on the broker's resources, on a
// resource that covers one of them ("*", a pattern as broad, or one that
// matches the broker's names).
func (s *Statement) guardedByBroker(broker string) []string {
	if s.Effect == "Deny" {
		return nil
	}
	var errs []string
	for _, a := range s.Actions {
		service, name, ok := strings.Cut(a, ":")
		if !ok {
			continue
		}
		for _, g := range brokerGuards {
			if !wildcardMatch(strings.ToLower(service), g.service) || !g.guards(name) {
				continue
			}
			for _, r := range s.Resources {
				broad := r == "*" || anyResourceARN(r)
				if (broad && !g.allowStar) || (!broad && g.covers(r, broker)) {
					errs = append(errs, fmt.Sprintf("grants %s on %q, which covers %s: every job role is denied that (the broker's guard); name the job's own resources", a, r, g.what))
					break
				}
			}
		}
	}
	return errs
}

// covers reports whether a (not broad) resource pattern matches the
// guarded resource: for a DynamoDB table, the table or one of its indexes
// or streams ("table/<name>/*", which the stack's Deny names too).
func (g brokerGuard) covers(pattern, broker string) bool {
	sample := g.sample(broker)
	samples := []string{sample}
	if g.service == "dynamodb" {
		samples = append(samples, sample+"/index/history", sample+"/stream/2026-01-01T00:00:00.000")
	}
	for _, s := range samples {
		if arnMatches(pattern, g.service, s) {
			return true
		}
	}
	return false
}

// guards reports whether an action name pattern ("Receive*") covers one of
// the guarded actions.
func (g brokerGuard) guards(pattern string) bool {
	p := strings.ToLower(pattern)
	if g.actions == nil {
		return !strings.HasPrefix(p, "list") && !strings.HasPrefix(p, "describe")
	}
	for _, a := range g.actions {
		if wildcardMatch(p, strings.ToLower(a)) {
			return true
		}
	}
	return false
}

// arnMatches reports whether an ARN pattern names service (or any) and a
// resource part matching sample, in any region and account.
func arnMatches(pattern, service, sample string) bool {
	parts := strings.SplitN(pattern, ":", 6)
	if len(parts) < 6 {
		return false
	}
	return wildcardMatch(parts[2], service) && wildcardMatch(parts[5], sample)
}

// wildcardMatch matches s against an IAM pattern: '*' any run of
// characters, '?' any one.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
