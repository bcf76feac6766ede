package broker

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
)

// A statement of any policy in the template, with intrinsic functions
// rendered as ${...} placeholders so tests can compare strings.
type statement struct {
	LogicalID    string // the resource holding the policy
	ResourceType string
	Doc          string // "trust", "key", "resource", or the identity policy's name
	Sid          string
	Effect       string
	Principals   []string
	Actions      []string
	NotActions   []string
	Resources    []string
	NotResources []string
	Condition    map[string]interface{}
	// CfnCondition is the CloudFormation condition the policy resource is
	// created under ("" for always).
	CfnCondition string
}

func (s statement) String() string {
	return fmt.Sprintf("%s %s[%s] sid=%q %s %v on %v principals=%v condition=%s", s.ResourceType, s.LogicalID, s.Doc, s.Sid, s.Effect, s.Actions, s.Resources, s.Principals, render(s.Condition))
}

// render turns a CloudFormation value into a string: literals as they are,
// Ref as ${Name}, GetAtt as ${Name.Attr}, Join joined.
func render(v interface{}) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case map[string]interface{}:
		if len(x) == 1 {
			if r, ok := x["Ref"]; ok {
				return "${" + r.(string) + "}"
			}
			if g, ok := x["Fn::GetAtt"]; ok {
				parts := g.([]interface{})
				return "${" + parts[0].(string) + "." + parts[1].(string) + "}"
			}
			if j, ok := x["Fn::Join"]; ok {
				args := j.([]interface{})
				var parts []string
				for _, p := range args[1].([]interface{}) {
					parts = append(parts, render(p))
				}
				return strings.Join(parts, args[0].(string))
			}
		}
	}
	b, _ := json.Marshal(renderDeep(v))
	return string(b)
}

// renderDeep renders the intrinsic functions inside a structure.
func renderDeep(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		if len(x) == 1 {
			for k := range x {
				if k == "Ref" || k == "Fn::GetAtt" || k == "Fn::Join" {
					return render(x)
				}
			}
		}
		out := map[string]interface{}{}
		for k, e := range x {
			out[k] = renderDeep(e)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = renderDeep(e)
		}
		return out
	}
	return v
}

// list renders a string-or-list field.
func list(v interface{}) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []interface{}:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = render(e)
		}
		return out
	}
	return []string{render(v)}
}

func principals(v interface{}) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case map[string]interface{}:
		var out []string
		for _, k := range sortedKeys(x) {
			for _, p := range list(x[k]) {
				out = append(out, k+":"+p)
			}
		}
		return out
	}
	return []string{render(v)}
}

func statementsOf(logicalID, resourceType, doc string, policy interface{}) []statement {
	m, _ := policy.(map[string]interface{})
	raw, _ := m["Statement"].([]interface{})
	var out []statement
	for _, r := range raw {
		s := r.(map[string]interface{})
		st := statement{
			LogicalID: logicalID, ResourceType: resourceType, Doc: doc,
			Effect:       render(s["Effect"]),
			Principals:   principals(s["Principal"]),
			Actions:      list(s["Action"]),
			NotActions:   list(s["NotAction"]),
			Resources:    list(s["Resource"]),
			NotResources: list(s["NotResource"]),
		}
		if sid, ok := s["Sid"].(string); ok {
			st.Sid = sid
		}
		if c, ok := s["Condition"].(map[string]interface{}); ok {
			st.Condition = renderDeep(c).(map[string]interface{})
		}
		out = append(out, st)
	}
	return out
}

// allStatements is every policy statement of the template: identity
// policies (inline, AWS::IAM::Policy, managed), trust policies, key
// policies, topic, queue and table policies, and Lambda permissions.
func allStatements(f *fixture) []statement {
	var out []statement
	res := f.resources()
	for _, id := range sortedKeys(res) {
		r := res[id].(map[string]interface{})
		typ := r["Type"].(string)
		props, _ := r["Properties"].(map[string]interface{})
		switch typ {
		case "AWS::IAM::Role":
			out = append(out, statementsOf(id, typ, "trust", props["AssumeRolePolicyDocument"])...)
			for _, p := range list2(props["Policies"]) {
				out = append(out, statementsOf(id, typ, render(p["PolicyName"]), p["PolicyDocument"])...)
			}
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			for _, st := range statementsOf(id, typ, "identity", props["PolicyDocument"]) {
				st.CfnCondition, _ = r["Condition"].(string)
				out = append(out, st)
			}
		case "AWS::KMS::Key":
			out = append(out, statementsOf(id, typ, "key", props["KeyPolicy"])...)
		case "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy":
			out = append(out, statementsOf(id, typ, "resource", props["PolicyDocument"])...)
		case "AWS::DynamoDB::Table":
			if rp, ok := props["ResourcePolicy"].(map[string]interface{}); ok {
				out = append(out, statementsOf(id, typ, "resource", rp["PolicyDocument"])...)
			}
		case "AWS::Lambda::Permission":
			out = append(out, statement{
				LogicalID: id, ResourceType: typ, Doc: "resource", Effect: "Allow",
				Principals: []string{render(props["Principal"])},
				Actions:    []string{render(props["Action"])},
				Resources:  []string{render(props["FunctionName"])},
				Condition:  map[string]interface{}{"SourceArn": render(props["SourceArn"])},
			})
		}
	}
	return out
}

func list2(v interface{}) []map[string]interface{} {
	raw, _ := v.([]interface{})
	out := make([]map[string]interface{}, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]interface{})
	}
	return out
}

// logicalID is the template's logical id of a construct's CloudFormation
// resource, asked of CDK: tests never spell out hashed ids.
func logicalID(f *fixture, c constructs.IConstruct) string {
	if d := c.Node().DefaultChild(); d != nil {
		return *f.app.Stack.Stack.GetLogicalId(d.(awscdk.CfnElement))
	}
	// Our own constructs wrap one L1 resource under another id.
	for _, child := range *c.Node().Children() {
		if el, ok := child.(awscdk.CfnElement); ok {
			return *f.app.Stack.Stack.GetLogicalId(el)
		}
	}
	panic("no CloudFormation resource under " + *c.Node().Path())
}

// identityStatements is everything a role may do: its inline policies and
// every AWS::IAM::Policy attached to it.
func identityStatements(f *fixture, roleID string) []statement {
	var out []statement
	for _, s := range allStatements(f) {
		switch {
		case s.LogicalID == roleID && s.Doc != "trust":
			out = append(out, s)
		case s.ResourceType == "AWS::IAM::Policy":
			for _, r := range list(f.resources()[s.LogicalID].(map[string]interface{})["Properties"].(map[string]interface{})["Roles"]) {
				if r == "${"+roleID+"}" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func trustStatements(f *fixture, roleID string) []statement {
	var out []statement
	for _, s := range allStatements(f) {
		if s.LogicalID == roleID && s.Doc == "trust" {
			out = append(out, s)
		}
	}
	return out
}

// inRegion keeps the statements that exist when the stack is deployed in
// region: those of resources without a CloudFormation condition, and those
// whose condition (the template's Fn::Or of Fn::Equals on AWS::Region) holds
// there.
func inRegion(t *testing.T, f *fixture, region string, got []statement) []statement {
	t.Helper()
	var out []statement
	for _, s := range got {
		if s.CfnCondition == "" || regionCondition(t, f, s.CfnCondition, region) {
			out = append(out, s)
		}
	}
	return out
}

// regionCondition evaluates a template condition made of Fn::Not, Fn::Or,
// references to other conditions and Fn::Equals [{Ref: AWS::Region},
// "<region>"] for one region.
func regionCondition(t *testing.T, f *fixture, name, region string) bool {
	t.Helper()
	conds, _ := f.json["Conditions"].(map[string]interface{})
	c, ok := conds[name]
	if !ok {
		t.Fatalf("no condition %s in the template", name)
	}
	var eval func(v interface{}) bool
	eval = func(v interface{}) bool {
		m, _ := v.(map[string]interface{})
		if ref, ok := m["Condition"].(string); ok && len(m) == 1 {
			return regionCondition(t, f, ref, region)
		}
		if not, ok := m["Fn::Not"].([]interface{}); ok && len(not) == 1 {
			return !eval(not[0])
		}
		if or, ok := m["Fn::Or"].([]interface{}); ok {
			for _, e := range or {
				if eval(e) {
					return true
				}
			}
			return false
		}
		if eq, ok := m["Fn::Equals"].([]interface{}); ok && len(eq) == 2 {
			if render(eq[0]) == "${AWS::Region}" {
				return eq[1] == region
			}
		}
		t.Fatalf("condition %s: cannot evaluate %s", name, render(v))
		return false
	}
	return eval(c)
}

// grant is what a test expects one statement to be.
type grant struct {
	Sid       string
	Effect    string // default Allow
	Actions   []string
	Resources []string
	Condition map[string]interface{}
}

// assertGrants checks that got is exactly want, statement by statement,
// in any order; actions and resources compare as sets.
func assertGrants(t *testing.T, who string, got []statement, want []grant) {
	t.Helper()
	key := func(effect string, sid string, actions, resources []string, cond map[string]interface{}) string {
		if effect == "" {
			effect = "Allow"
		}
		a := append([]string(nil), actions...)
		r := append([]string(nil), resources...)
		sort.Strings(a)
		sort.Strings(r)
		c := ""
		if len(cond) > 0 {
			c = render(cond)
		}
		return fmt.Sprintf("%s sid=%q %v on %v if %s", effect, sid, a, r, c)
	}
	var gotKeys, wantKeys []string
	for _, s := range got {
		gotKeys = append(gotKeys, key(s.Effect, s.Sid, s.Actions, s.Resources, s.Condition))
	}
	for _, g := range want {
		wantKeys = append(wantKeys, key(g.Effect, g.Sid, g.Actions, g.Resources, g.Condition))
	}
	sort.Strings(gotKeys)
	sort.Strings(wantKeys)
	if strings.Join(gotKeys, "\n") != strings.Join(wantKeys, "\n") {
		t.Errorf("%s may do\n  %s\nwant exactly\n  %s", who, strings.Join(gotKeys, "\n  "), strings.Join(wantKeys, "\n  "))
	}
}

// Helpers to write expected ARNs the way render prints them.
const (
	partition = "${AWS::Partition}"
	region    = "${AWS::Region}"
	account   = "${AWS::AccountId}"
)

func stackArn(service, resource string) string {
	return "arn:" + partition + ":" + service + ":" + region + ":" + account + ":" + resource
}

func getAtt(id, attr string) string { return "${" + id + "." + attr + "}" }
func ref(id string) string          { return "${" + id + "}" }
