package iamcheck

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

var subVar = regexp.MustCompile(`\$\{[^}!][^}]*\}`)

// Where the evaluation places the stack: the account and region local mode
// runs in (moto's default account), so that the template's ARNs and the
// recorded ones are the same strings.
const (
	Account   = "123456789012"
	Region    = "us-east-1"
	Partition = "aws"
)

// Names are the physical names the template leaves to CloudFormation but
// local mode chooses: the resolver uses local mode's.
type Names struct {
	LedgerTable string // the AWS::DynamoDB::Table
	RunLogGroup string // the run log group (logical id CatalogueRunLogs…)
}

// resolver turns the template's intrinsic functions into strings.
type resolver struct {
	t     *Template
	names Names
	conds map[string]bool
}

func newResolver(t *Template, names Names) *resolver {
	// us-east-1 has SQS ABAC: the stack's conditions as they resolve there.
	return &resolver{t: t, names: names, conds: map[string]bool{"SqsAbacAvailable": true, "SqsAbacUnavailable": false}}
}

// present reports whether a resource exists in this region.
func (r *resolver) present(id string) bool {
	c := r.t.Resources[id].Condition
	return c == "" || r.conds[c]
}

// value resolves every intrinsic in v.
func (r *resolver) value(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			rv, err := r.value(e)
			if err != nil {
				return nil, err
			}
			out[k] = rv
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			rv, err := r.value(e)
			if err != nil {
				return nil, err
			}
			out = append(out, rv)
		}
		return out, nil
	default:
		return v, nil
	}
}

func (r *resolver) str(v any) (string, error) {
	rv, err := r.value(v)
	if err != nil {
		return "", err
	}
	s, ok := rv.(string)
	if !ok {
		return "", fmt.Errorf("%v is not a string", rv)
	}
	return s, nil
}

func (r *resolver) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		return r.ref(arg.(string))
	case "Fn::GetAtt":
		a := arg.([]any)
		return r.getAtt(a[0].(string), a[1].(string))
	case "Fn::Join":
		a := arg.([]any)
		parts, err := r.value(a[1])
		if err != nil {
			return nil, err
		}
		var ss []string
		for _, p := range parts.([]any) {
			ss = append(ss, fmt.Sprint(p))
		}
		return strings.Join(ss, a[0].(string)), nil
	case "Fn::Select":
		a := arg.([]any)
		list, err := r.value(a[1])
		if err != nil {
			return nil, err
		}
		var i int
		fmt.Sscan(fmt.Sprint(a[0]), &i)
		return list.([]any)[i], nil
	case "Fn::Split":
		a := arg.([]any)
		s, err := r.str(a[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, a[0].(string)) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::If":
		a := arg.([]any)
		if r.conds[a[0].(string)] {
			return r.value(a[1])
		}
		return r.value(a[2])
	case "Fn::Sub":
		s, _ := arg.(string)
		var err error
		out := subVar.ReplaceAllStringFunc(s, func(m string) string {
			name := m[2 : len(m)-1]
			var v any
			var e error
			if id, attr, ok := strings.Cut(name, "."); ok {
				v, e = r.getAtt(id, attr)
			} else {
				v, e = r.ref(name)
			}
			if e != nil {
				err = e
			}
			return fmt.Sprint(v)
		})
		return out, err
	}
	return nil, fmt.Errorf("intrinsic %s is not supported by the evaluation's resolver", fn)
}

func (r *resolver) arn(service, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", Partition, service, Region, Account, resource)
}

// name is a resource's physical name: its name property, local mode's, or
// its logical id.
func (r *resolver) name(id string) string {
	res := r.t.Resources[id]
	for _, p := range []string{"TopicName", "TableName", "LogGroupName", "ClusterName", "QueueName", "FunctionName", "RoleName", "Family"} {
		if s, ok := res.Properties[p].(string); ok {
			return s
		}
	}
	switch {
	case res.Type == "AWS::DynamoDB::Table" && r.names.LedgerTable != "":
		return r.names.LedgerTable
	case res.Type == "AWS::Logs::LogGroup" && strings.HasPrefix(id, "CatalogueRunLogs") && r.names.RunLogGroup != "":
		return r.names.RunLogGroup
	}
	return id
}

func (r *resolver) ref(id string) (any, error) {
	switch id {
	case "AWS::Partition":
		return Partition, nil
	case "AWS::Region":
		return Region, nil
	case "AWS::AccountId":
		return Account, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackName":
		return "stack", nil
	}
	res, ok := r.t.Resources[id]
	if !ok {
		return nil, fmt.Errorf("a Ref to unknown resource %s", id)
	}
	switch res.Type {
	case "AWS::SNS::Topic", "AWS::ECS::TaskDefinition", "AWS::IAM::OIDCProvider", "AWS::Lambda::Function":
		return r.getAtt(id, "Arn")
	case "AWS::SQS::Queue":
		return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", Region, Account, r.name(id)), nil
	}
	return r.name(id), nil
}

func (r *resolver) getAtt(id, attr string) (any, error) {
	res, ok := r.t.Resources[id]
	if !ok {
		return nil, fmt.Errorf("GetAtt of unknown %s", id)
	}
	n := r.name(id)
	switch res.Type {
	case "AWS::SNS::Topic":
		return r.arn("sns", n), nil
	case "AWS::KMS::Key":
		return r.arn("kms", "key/"+id), nil
	case "AWS::DynamoDB::Table":
		return r.arn("dynamodb", "table/"+n), nil
	case "AWS::Logs::LogGroup":
		return r.arn("logs", "log-group:"+n+":*"), nil
	case "AWS::IAM::Role":
		path, _ := res.Properties["Path"].(string)
		if path == "" {
			path = "/"
		}
		return fmt.Sprintf("arn:%s:iam::%s:role%s%s", Partition, Account, path, n), nil
	case "AWS::ECS::Cluster":
		return r.arn("ecs", "cluster/"+n), nil
	case "AWS::ECS::TaskDefinition":
		return r.arn("ecs", "task-definition/"+n+":1"), nil
	case "AWS::SQS::Queue":
		return r.arn("sqs", n), nil
	case "AWS::Lambda::Function":
		return r.arn("lambda", "function:"+n), nil
	case "AWS::Events::Rule":
		return r.arn("events", "rule/"+n), nil
	case "AWS::IAM::OIDCProvider":
		return fmt.Sprintf("arn:%s:iam::%s:oidc-provider/token.actions.githubusercontent.com", Partition, Account), nil
	}
	return fmt.Sprintf("%s.%s", id, attr), nil
}

// Policy is a resolved policy document with the name the report uses.
type Policy struct {
	Name string // owner/policy, e.g. dispatcher/DispatcherRoleDefaultPolicy…
	Doc  map[string]any
}

// Statements are the policy's statements, each with its report key.
func (p Policy) Statements() []Statement {
	var out []Statement
	list, _ := p.Doc["Statement"].([]any)
	for i, s := range list {
		m, _ := s.(map[string]any)
		sid, _ := m["Sid"].(string)
		if sid == "" {
			sid = fmt.Sprintf("#%d", i+1)
		}
		eff, _ := m["Effect"].(string)
		out = append(out, Statement{Key: p.Name + "/" + sid, Sid: sid, Effect: eff, Body: m})
	}
	return out
}

// Statement is one statement of a policy.
type Statement struct {
	Key, Sid, Effect string
	Body             map[string]any
}

// Summary is the statement's actions and resources in one line.
func (s Statement) Summary() string {
	b, _ := json.Marshal(map[string]any{"Action": s.Body["Action"], "Resource": s.Body["Resource"], "Principal": s.Body["Principal"], "Condition": s.Body["Condition"]})
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
