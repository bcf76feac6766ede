package iamcheck

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

// List is iam.yaml: the forbidden calls and the reasons for unused grants.
type List struct {
	Forbidden []Forbidden `yaml:"forbidden"`
	Unused    []Unused    `yaml:"unused"`
}

// Forbidden is a call that must be denied.
type Forbidden struct {
	ID       string `yaml:"id"`
	Reason   string `yaml:"reason"`
	As       string `yaml:"as"`
	Call     string `yaml:"call"`
	Resource string `yaml:"resource"`
	DeniedBy string `yaml:"denied_by"`
	Broad    bool   `yaml:"broad"`
	Awaits   string `yaml:"awaits"`
}

// Unused is an Allow statement no recorded call exercises, and why it stays.
type Unused struct {
	Statement string `yaml:"statement"`
	Reason    string `yaml:"reason"`
	// Only limits the reason to these configurations (scenario names).
	Only []string `yaml:"only"`
}

// maxListSize bounds iam.yaml.
const maxListSize = 1 << 20

// LoadList reads the list, refusing unknown fields and incomplete entries.
func LoadList(file string) (*List, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxListSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", file, maxListSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var l List
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	seen := map[string]bool{}
	for i, f := range l.Forbidden {
		if f.ID == "" || f.Reason == "" || f.As == "" || f.Call == "" || f.Resource == "" || f.DeniedBy == "" {
			return nil, fmt.Errorf("%s: forbidden entry %d needs id, reason, as, call, resource and denied_by", file, i+1)
		}
		if seen[f.ID] {
			return nil, fmt.Errorf("%s: forbidden id %q twice", file, f.ID)
		}
		if f.Awaits != "" && f.Awaits != "isolation" {
			return nil, fmt.Errorf("%s: %s: awaits may only be \"isolation\"", file, f.ID)
		}
		seen[f.ID] = true
	}
	for i, u := range l.Unused {
		if u.Statement == "" || u.Reason == "" {
			return nil, fmt.Errorf("%s: unused entry %d needs statement and reason", file, i+1)
		}
	}
	return &l, nil
}

// ReasonFor is the listed reason an Allow statement may stay unused ("" none).
func (l *List) ReasonFor(key, scenario string) string {
	for _, u := range l.Unused {
		applies := len(u.Only) == 0
		for _, o := range u.Only {
			applies = applies || o == scenario
		}
		if applies && globMatch(u.Statement, key) {
			return u.Reason
		}
	}
	return ""
}

// ForbiddenRequests are the requests of one forbidden entry in a stack: one
// per matching caller (job:* is every job role). skip is why there is
// none in this configuration ("" when there are).
func (p *Replay) ForbiddenRequests(f Forbidden, cfg *config.Config, requester string) (reqs []Request, skip string) {
	service, op, _ := strings.Cut(f.Call, ":")
	c := localbroker.Call{Service: service, Operation: op, Params: map[string]string{}, Status: 200, Result: map[string]string{}}
	s := p.Stack
	switch f.Resource {
	case "run-queue", "inbox":
		for _, name := range sortedKeys(p.Queues) {
			if isInbox(name) == (f.Resource == "inbox") {
				c.Params["QueueUrl"] = "https://sqs." + Region + ".amazonaws.com/" + Account + "/" + name
				break
			}
		}
		if c.Params["QueueUrl"] == "" && f.Resource == "inbox" {
			return nil, "no warm runner's inbox was recorded (no job of this configuration has warm:)"
		}
		if c.Params["QueueUrl"] == "" {
			return nil, "no run queue was recorded"
		}
	case "run-log-group":
		arn := s.Resources["run-log-group"]
		c.Params["logGroupName"] = arn[strings.Index(arn, "log-group:")+len("log-group:"):]
		c.Params["logStreamName"] = "website/runner/0123456789abcdef"
	case "ledger":
		arn := s.Resources["ledger"]
		c.Params["TableName"] = arn[strings.LastIndex(arn, "/")+1:]
	case "task":
		c.Params["cluster"] = s.Resources["cluster"]
		c.Params["task"] = strings.Replace(s.Resources["cluster"], ":cluster/", ":task/", 1) + "/0123456789abcdef0123456789abcdef"
	case "event-bus":
		c.Params["Entries"] = `[{"Source":"deploy-broker","DetailType":"deploy-broker run"}]`
	case "view-table", "run-pointer":
		if s.Resources["view-table"] == "" {
			return nil, "the stack has no view table"
		}
		c.Params["TableName"] = s.Resources["view-table"]
		if f.Resource == "view-table" {
			break // the table itself (its policy, the table): no item
		}
		c.Params["Item"] = `{"` + brokerview.KeyAttr + `":{"S":"` + brokerview.RunKey("01JAAAAAAAAAAAAAAAAAAAAAAA") + `"},"` + brokerview.QueueAttr + `":{"S":"https://sqs.` + Region + `.amazonaws.com/` + Account + `/elsewhere.fifo"}}`
		c.Params["Key"] = `{"` + brokerview.KeyAttr + `":{"S":"` + brokerview.RunKey("01JAAAAAAAAAAAAAAAAAAAAAAA") + `"}}`
	case "topic":
		c.Params["TopicArn"] = s.Resources["topic"]
	case "dispatcher-function", "task-definition", "broker-role":
	default:
		return nil, fmt.Sprintf("error: unknown resource %q", f.Resource)
	}
	var callers []string
	switch {
	case f.As == "job:*":
		for _, n := range sortedKeys(s.Roles) {
			if strings.HasPrefix(n, "job:") {
				callers = append(callers, n)
			}
		}
	case f.As == "other-ci":
		other := otherCI(cfg, requester)
		if other == "" {
			return nil, "the configuration trusts no CI principal besides the requester"
		}
		callers = []string{other}
	case f.As == "untrusted":
		callers = []string{"arn:aws:sts::999999999999:assumed-role/stranger/attacker-session"}
	default:
		if s.Roles[f.As] == nil {
			return nil, fmt.Sprintf("the stack has no %s role in this configuration", f.As)
		}
		callers = []string{f.As}
	}
	for _, who := range callers {
		var name, session, roleARN string
		var pols []Policy
		var ok bool
		if r := s.Roles[who]; r != nil {
			name, session, roleARN, pols, ok = p.caller("arn:aws:sts::" + Account + ":assumed-role/" + r.ARN[strings.LastIndex(r.ARN, "/")+1:] + "/forbidden")
		} else {
			name, session, roleARN, pols, ok = p.caller(who)
		}
		if !ok {
			return nil, "error: cannot make caller " + who
		}
		if f.Broad {
			pols = append(append([]Policy(nil), pols...), Policy{Name: "hypothetical/broad-job-policy", Doc: map[string]any{"Version": "2012-10-17",
				"Statement": []any{map[string]any{"Sid": "EverythingAJobPolicyMightGrant", "Effect": "Allow", "Action": "*", "Resource": "*"}}}})
		}
		base := Request{Origin: "forbidden", Note: f.ID, Caller: name, Principal: session, PrincipalARN: roleARN, Identity: pols}
		var rs []Request
		var err error
		switch f.Resource {
		case "dispatcher-function":
			rs = []Request{withCall(base, f.Call, s.Resources["dispatcher-function"], nil)}
		case "task-definition":
			for _, k := range sortedKeys(s.Resources) {
				if strings.HasPrefix(k, "task-definition:") {
					rs = append(rs, withCall(base, f.Call, s.Resources[k], nil))
					break
				}
			}
		case "broker-role":
			rs = []Request{withCall(base, f.Call, s.Roles["dispatcher"].ARN, map[string]any{"iam:PassedToService": "lambda.amazonaws.com"})}
		default:
			rs, err = p.requests(base, c)
		}
		if err != nil {
			return nil, "error: " + err.Error()
		}
		for _, r := range rs {
			if r.Origin != "implicit" {
				r.Origin, r.Note = "forbidden", f.ID
				reqs = append(reqs, r)
			}
		}
	}
	return reqs, ""
}

func withCall(base Request, action, resource string, ctx map[string]any) Request {
	base.Action, base.Resource, base.Context = action, resource, ctx
	return base
}

// otherCI is a trusted CI principal's session other than the requester's
// role ("" when there is none).
func otherCI(cfg *config.Config, requester string) string {
	for _, e := range cfg.TrustedPrincipals {
		var role string
		switch {
		case len(e) == 12:
			role = "arn:aws:iam::" + e + ":role/ci"
		case strings.Contains(e, ":role/"):
			role = e
		default:
			continue
		}
		parts := strings.Split(role, "/")
		session := "arn:aws:sts::" + accountOf(role) + ":assumed-role/" + parts[len(parts)-1] + "/other"
		if !strings.Contains(requester, ":assumed-role/"+parts[len(parts)-1]+"/") || accountOf(role) != accountOf(requester) {
			return session
		}
	}
	return ""
}

// globMatch matches a key against a pattern whose * stands for any text,
// slashes included.
func globMatch(pattern, key string) bool {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$"
	ok, _ := regexp.MatchString(re, key)
	return ok
}
