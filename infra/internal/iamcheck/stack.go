package iamcheck

import (
	"fmt"
	"strings"
)

// Stack is what the evaluation needs of a synthesized template: each
// role's identity policies and trust policy, and the resource policies.
type Stack struct {
	Roles map[string]*Role // by report name
	// ResourcePolicies by report name: topic, topic-key, run-log-key, dlq.
	ResourcePolicies map[string]Policy
	// Resources are ARNs by report name: topic, topic-key, ledger,
	// run-log-group, cluster, dispatcher-function, event-bus,
	// task-definition:<job>.
	Resources map[string]string
	// External are managed policies the template attaches but does not
	// contain (a job's managed_policies): not evaluated, listed.
	External []string
}

// Role is one IAM role of the template.
type Role struct {
	Name      string // report name: dispatcher, runner:<job> (task role), job:<job> (deployment role), execution, reader, github-trigger, flow-logs
	LogicalID string
	ARN       string
	Policies  []Policy
	Trust     Policy
}

// roleName is a role's report name from its logical id.
func roleName(id string) string {
	switch {
	case strings.HasPrefix(id, "DispatcherRole"):
		return "dispatcher"
	case strings.HasPrefix(id, "CatalogueExecutionRole"):
		return "execution"
	case strings.HasPrefix(id, "RunReaderRole"):
		return "reader"
	case strings.HasPrefix(id, "GitHubTriggerRole"):
		return "github-trigger"
	case strings.HasPrefix(id, "PublishedViewWriterRole"):
		return "view-writer"
	case strings.HasPrefix(id, "NetworkVpc") && strings.Contains(id, "IAMRole"):
		return "flow-logs"
	case strings.HasPrefix(id, "CatalogueJob") && strings.Contains(id, "DeploymentRole"):
		return "job:" + strings.TrimPrefix(id[:strings.Index(id, "DeploymentRole")], "CatalogueJob")
	case strings.HasPrefix(id, "CatalogueJob") && strings.Contains(id, "TaskRole"):
		return "runner:" + strings.TrimPrefix(id[:strings.Index(id, "TaskRole")], "CatalogueJob")
	}
	return id
}

// LoadStack resolves the template's roles and policies.
func LoadStack(t *Template, names Names) (*Stack, error) {
	r := newResolver(t, names)
	s := &Stack{Roles: map[string]*Role{}, ResourcePolicies: map[string]Policy{}, Resources: map[string]string{}}
	byID := map[string]*Role{}
	doc := func(v any) (map[string]any, error) {
		rv, err := r.value(v)
		if err != nil {
			return nil, err
		}
		m, _ := rv.(map[string]any)
		return m, nil
	}
	for _, id := range sortedKeys(t.Resources) {
		res := t.Resources[id]
		if res.Type != "AWS::IAM::Role" || !r.present(id) {
			continue
		}
		arn, err := r.getAtt(id, "Arn")
		if err != nil {
			return nil, err
		}
		role := &Role{Name: roleName(id), LogicalID: id, ARN: arn.(string)}
		trust, err := doc(res.Properties["AssumeRolePolicyDocument"])
		if err != nil {
			return nil, err
		}
		role.Trust = Policy{Name: role.Name + "/trust", Doc: trust}
		inline, _ := res.Properties["Policies"].([]any)
		for _, p := range inline {
			pm := p.(map[string]any)
			d, err := doc(pm["PolicyDocument"])
			if err != nil {
				return nil, err
			}
			role.Policies = append(role.Policies, Policy{Name: role.Name + "/" + pm["PolicyName"].(string), Doc: d})
		}
		managed, _ := res.Properties["ManagedPolicyArns"].([]any)
		for _, m := range managed {
			a, err := r.str(m)
			if err != nil {
				return nil, err
			}
			s.External = append(s.External, role.Name+": "+a)
		}
		s.Roles[role.Name] = role
		byID[id] = role
	}
	for _, id := range sortedKeys(t.Resources) {
		res := t.Resources[id]
		if !r.present(id) {
			continue
		}
		switch res.Type {
		case "AWS::IAM::Policy":
			d, err := doc(res.Properties["PolicyDocument"])
			if err != nil {
				return nil, err
			}
			roles, _ := res.Properties["Roles"].([]any)
			for _, ref := range roles {
				rid, _ := ref.(map[string]any)["Ref"].(string)
				role := byID[rid]
				if role == nil {
					return nil, fmt.Errorf("policy %s names role %v, not in the template", id, ref)
				}
				role.Policies = append(role.Policies, Policy{Name: role.Name + "/" + id, Doc: d})
			}
		case "AWS::SNS::TopicPolicy":
			d, err := doc(res.Properties["PolicyDocument"])
			if err != nil {
				return nil, err
			}
			s.ResourcePolicies["topic"] = Policy{Name: "topic-policy", Doc: d}
		case "AWS::SQS::QueuePolicy":
			d, err := doc(res.Properties["PolicyDocument"])
			if err != nil {
				return nil, err
			}
			s.ResourcePolicies["dlq"] = Policy{Name: "dlq-policy", Doc: d}
		case "AWS::KMS::Key":
			d, err := doc(res.Properties["KeyPolicy"])
			if err != nil {
				return nil, err
			}
			name := "topic-key"
			if strings.HasPrefix(id, "CatalogueRunLogKey") {
				name = "run-log-key"
			}
			s.ResourcePolicies[name] = Policy{Name: name + "-policy", Doc: d}
			a, _ := r.getAtt(id, "Arn")
			s.Resources[name] = a.(string)
		case "AWS::SNS::Topic":
			a, _ := r.getAtt(id, "Arn")
			s.Resources["topic"] = a.(string)
		case "AWS::DynamoDB::Table":
			a, _ := r.getAtt(id, "Arn")
			if !strings.HasPrefix(id, "PublishedViewTable") {
				s.Resources["ledger"] = a.(string)
				break
			}
			// The broker's published view (issue 25): its own table and
			// resource policy.
			s.Resources["view-table"] = a.(string)
			rp, _ := res.Properties["ResourcePolicy"].(map[string]any)
			d, err := doc(rp["PolicyDocument"])
			if err != nil {
				return nil, err
			}
			s.ResourcePolicies["view"] = Policy{Name: "view-table-policy", Doc: d}
		case "AWS::Logs::LogGroup":
			if strings.HasPrefix(id, "CatalogueRunLogs") {
				s.Resources["run-log-group"] = r.arn("logs", "log-group:"+r.name(id))
			}
		case "AWS::ECS::Cluster":
			a, _ := r.getAtt(id, "Arn")
			s.Resources["cluster"] = a.(string)
		case "AWS::Lambda::Function":
			if !strings.HasPrefix(id, "Dispatcher") {
				break // the published view's writer (a custom resource's Lambda)
			}
			a, _ := r.getAtt(id, "Arn")
			s.Resources["dispatcher-function"] = a.(string)
		case "AWS::ECS::TaskDefinition":
			a, _ := r.getAtt(id, "Arn")
			job := strings.TrimPrefix(id[:strings.Index(id, "TaskDefinition")], "CatalogueJob")
			s.Resources["task-definition:"+job] = a.(string)
		}
	}
	s.Resources["event-bus"] = r.arn("events", "event-bus/default")
	return s, nil
}

// AllowStatements are every Allow statement of the stack, by key.
func (s *Stack) AllowStatements() map[string]Statement {
	out := map[string]Statement{}
	add := func(p Policy) {
		for _, st := range p.Statements() {
			if st.Effect == "Allow" {
				out[st.Key] = st
			}
		}
	}
	for _, r := range s.Roles {
		add(r.Trust)
		for _, p := range r.Policies {
			add(p)
		}
	}
	for _, p := range s.ResourcePolicies {
		add(p)
	}
	return out
}
