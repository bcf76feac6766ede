package broker

import (
	"strings"
	"testing"
)

// No policy anywhere grants "*" as an action, and every wildcard is one of
// a short list, each with its reason.

// wildcardAction is an allowed action with a wildcard, and why.
type wildcardAction struct {
	action, why string
	// applies says whether the statement is the one the reason is about.
	applies func(statement) bool
}

var allowedWildcardActions = []wildcardAction{
	{"kms:*", "the key policy's account statement (CDK's default key policy): it delegates key administration to this account's IAM policies; without it the key is unmanageable",
		func(s statement) bool {
			return s.ResourceType == "AWS::KMS::Key" && s.Effect == "Allow" && len(s.Principals) == 1 &&
				s.Principals[0] == "AWS:arn:"+partition+":iam::"+account+":root" && len(s.Condition) == 0
		}},
	{"kms:GenerateDataKey*", "SNS needs GenerateDataKey and GenerateDataKeyWithoutPlaintext for publishers; only via SNS, for this topic",
		func(s statement) bool {
			c, _ := s.Condition["StringEquals"].(map[string]interface{})
			return c["kms:ViaService"] == "sns."+region+".amazonaws.com" && c["kms:EncryptionContext:aws:sns:topicArn"] != nil
		}},
	{"sqs:*", "a Deny: the dead-letter queue refuses every request not made over TLS",
		func(s statement) bool { return s.Effect == "Deny" && isTLSDeny(s) }},
	{"kms:Encrypt*", "CloudWatch Logs' use of the run log key, as the CloudWatch Logs User Guide documents it; for the run log group only", runLogKeyStatement},
	{"kms:Decrypt*", "the same", runLogKeyStatement},
	{"kms:ReEncrypt*", "the same", runLogKeyStatement},
	{"kms:GenerateDataKey*", "the same", runLogKeyStatement},
	{"kms:Describe*", "the same", runLogKeyStatement},
	{"sqs:*", "a Deny on every job's deployment role: no job reads, writes or finds a warm runner's inbox",
		func(s statement) bool { return s.Effect == "Deny" && s.Sid == "NeverTouchWarmInboxes" }},
	{"dynamodb:*", "a Deny on every job role: no job touches the run ledger in any way",
		func(s statement) bool { return s.Effect == "Deny" && s.Sid == "NeverTouchTheRunLedger" }},
	{"dynamodb:*", "a Deny on every job role: no job touches the published view table in any way (its policy, its run pointers, the table)",
		func(s statement) bool { return s.Effect == "Deny" && s.Sid == "NeverTouchTheView" }},
	// Issue 22: the rest of the job roles' broker guard (jobguard.go).
	{"logs:*", "a Deny on every job role: no job reads, writes or deletes the run log",
		func(s statement) bool { return s.Effect == "Deny" && s.Sid == "NeverTouchTheRunLog" }},
	{"lambda:*", "a Deny on every job role: no job invokes, reads or changes the dispatcher",
		func(s statement) bool { return s.Effect == "Deny" && s.Sid == "NeverTouchTheDispatcher" }},
	{"ecs:*", "a Deny on every job role: no job controls the broker cluster or its tasks",
		func(s statement) bool {
			return s.Effect == "Deny" && (s.Sid == "NeverControlTheBrokerCluster" || s.Sid == "NeverControlTasksOnTheBrokerCluster" && clusterConditioned(s))
		}},
}

// runLogKeyStatement is the run log key's statement for CloudWatch Logs.
func runLogKeyStatement(s statement) bool {
	c, _ := s.Condition["ArnEquals"].(map[string]interface{})
	return s.ResourceType == "AWS::KMS::Key" && s.Sid == "CloudWatchLogsUsesKeyForRunLogGroupOnly" && len(s.Condition) == 1 &&
		c["kms:EncryptionContext:aws:logs:arn"] != nil
}

func isTLSDeny(s statement) bool {
	b, _ := s.Condition["Bool"].(map[string]interface{})
	return len(s.Condition) == 1 && b["aws:SecureTransport"] == "false"
}

// wildcardResource is an allowed resource with a wildcard, and why.
type wildcardResource struct {
	why     string
	applies func(s statement, resource string) bool
}

func actionsAre(s statement, actions ...string) bool {
	return strings.Join(sortedCopy(s.Actions), ",") == strings.Join(sortedCopy(actions), ",")
}

func sortedCopy(s []string) []string {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return sortedKeys(m)
}

func clusterConditioned(s statement) bool {
	c, _ := s.Condition["ArnEquals"].(map[string]interface{})
	return c["ecs:cluster"] != nil
}

var allowedWildcardResources = []wildcardResource{
	{"warm runners' inboxes are named after slot ids the dispatcher makes (<broker>-warm-<ULID>): the dispatcher manages them, a runner takes from its own job's only (tag condition; by name only under SqsAbacUnavailable)", func(s statement, r string) bool {
		if !strings.HasSuffix(r, "-warm-*") || !strings.Contains(r, ":sqs:") {
			return false
		}
		switch s.Sid {
		case "ManageWarmInboxes":
			return actionsAre(s, "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SendMessage", "sqs:TagQueue")
		case "TakeAssignmentFromOwnInbox":
			c, _ := s.Condition["StringEquals"].(map[string]interface{})
			return actionsAre(s, "sqs:ReceiveMessage", "sqs:DeleteMessage") && c["aws:ResourceTag/deploy-broker:job"] != nil
		case "TakeAssignmentWithoutAbac":
			return actionsAre(s, "sqs:ReceiveMessage", "sqs:DeleteMessage") && s.CfnCondition == SqsAbacUnavailableCondition
		}
		return false
	}},
	{"in a key policy \"*\" means this key", func(s statement, r string) bool {
		return s.ResourceType == "AWS::KMS::Key" && r == "*"
	}},
	{"ecr:GetAuthorizationToken has no resource-level permissions", func(s statement, r string) bool {
		return r == "*" && actionsAre(s, "ecr:GetAuthorizationToken")
	}},
	{"sqs:ListQueues has no resource-level permissions (the sweep lists run queues by prefix)", func(s statement, r string) bool {
		return r == "*" && actionsAre(s, "sqs:ListQueues")
	}},
	{"ecs:ListTasks is authorized on container instances, which Fargate has none of; scoped by the cluster condition", func(s statement, r string) bool {
		return r == "*" && actionsAre(s, "ecs:ListTasks") && clusterConditioned(s)
	}},
	{"task ids are made by ECS: any task of the broker cluster, with the cluster condition (or at RunTask only, for tagging)", func(s statement, r string) bool {
		return strings.HasSuffix(r, ":task/"+clusterOf(r)+"/*") && (clusterConditioned(s) || s.Condition["StringEquals"] != nil && actionsAre(s, "ecs:TagResource"))
	}},
	{"log streams are named by Lambda: the published view's writer writes the streams of its own log group only", func(s statement, r string) bool {
		return s.Sid == "WriteOwnLog" && strings.HasSuffix(r, ":log-group:/deploy-broker/"+brokerOfLogGroup(r)+"/view-writer:*") && actionsAre(s, "logs:CreateLogStream", "logs:PutLogEvents")
	}},
}

// brokerOfLogGroup is the broker of a "/deploy-broker/<broker>/…" log group ARN.
func brokerOfLogGroup(r string) string {
	_, rest, _ := strings.Cut(r, ":log-group:/deploy-broker/")
	b, _, _ := strings.Cut(rest, "/")
	return b
}

// jobResources maps each job's deployment role to the resources its configured
// statements name: a wildcard there is the job's own, declared and reviewed
// in the configuration, granted verbatim and to that job only.
func jobResources(f *fixture) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, j := range f.app.Stack.Catalogue.Jobs() {
		m := map[string]bool{}
		for _, st := range f.app.Config.Jobs[j.Name()].Policy {
			for _, r := range st.Resources {
				m[r] = true
			}
		}
		out[logicalID(f, j.DeploymentRole())] = m
	}
	return out
}

func clusterOf(r string) string {
	i := strings.Index(r, ":task/")
	if i < 0 {
		return ""
	}
	rest := r[i+len(":task/"):]
	return strings.SplitN(rest, "/", 2)[0]
}

func TestNoPolicyGrantsAWildcardAction(t *testing.T) {
	// GIVEN every policy statement of both test stacks
	for _, f := range []*fixture{mainStack(t), otherStack(t), warmStack(t)} {
		for _, s := range allStatements(f) {
			// THEN no statement uses NotAction, nor "*"
			if len(s.NotActions) > 0 {
				t.Errorf("NotAction grants everything else: %s", s)
			}
			for _, a := range s.Actions {
				if a == "*" {
					t.Errorf("action \"*\": %s", s)
					continue
				}
				if !strings.Contains(a, "*") {
					continue
				}
				// AND every other wildcard action is on the list, in the
				// statement its reason is about
				ok := false
				for _, w := range allowedWildcardActions {
					if w.action == a && w.applies(s) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("wildcard action %q is not justified: %s", a, s)
				}
			}
		}
	}
}

func TestEveryWildcardResourceIsJustified(t *testing.T) {
	// GIVEN every policy statement of both test stacks
	for _, f := range []*fixture{mainStack(t), otherStack(t), warmStack(t)} {
		declared := jobResources(f)
		for _, s := range allStatements(f) {
			if s.Doc == "trust" || s.ResourceType == "AWS::Lambda::Permission" {
				continue
			}
			if len(s.NotResources) > 0 {
				t.Errorf("NotResource grants everything else: %s", s)
			}
			for _, r := range s.Resources {
				if !strings.Contains(r, "*") {
					continue
				}
				// Denies restrict: a wildcard there takes away, never grants.
				if s.Effect == "Deny" {
					continue
				}
				// THEN each wildcard resource is on the list, or a job's own
				ok := declared[s.LogicalID][r] && s.Doc == "deployment"
				for _, w := range allowedWildcardResources {
					if w.applies(s, r) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("wildcard resource %q is not justified: %s", r, s)
				}
			}
		}
	}
}

// ECS Exec needs ssmmessages on the task role: no role has it.
func TestNoRoleAllowsECSExec(t *testing.T) {
	for _, f := range []*fixture{mainStack(t), otherStack(t)} {
		for _, s := range allStatements(f) {
			for _, a := range s.Actions {
				if strings.HasPrefix(a, "ssmmessages:") || a == "ecs:ExecuteCommand" {
					t.Errorf("%s allows %s", s, a)
				}
			}
		}
	}
}
