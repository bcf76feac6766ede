package iamcheck

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

// requests are the authorization requests AWS makes for one call: the
// call's own action on its resource, with the context keys that matter,
// and the implicit ones behind it (iam:PassRole on RunTask, ecs:TagResource
// and sqs:TagQueue when tagging at creation, KMS behind an encrypted topic,
// sts:TagSession and sts:SetSourceIdentity on AssumeRole).
func (p *Replay) requests(base Request, c localbroker.Call) ([]Request, error) {
	s := p.Stack
	one := func(action, resource string, ctx map[string]any, rp *Policy) Request {
		r := base
		r.Action, r.Resource, r.Context, r.ResourcePolicy = action, resource, ctx, rp
		return r
	}
	implicit := func(r Request, note string) Request {
		r.Origin, r.Note = "implicit", note
		return r
	}
	action := c.Service + ":" + c.Operation
	if a, ok := batchActions[action]; ok {
		action = a
	}
	switch c.Service {
	case "sns":
		if c.Operation != "Publish" {
			return nil, fmt.Errorf("no rule for %s", action)
		}
		topic := c.Params["TopicArn"]
		var rp *Policy
		if pol, ok := s.ResourcePolicies["topic"]; ok {
			rp = &pol
		}
		out := []Request{one(action, topic, nil, rp)}
		if key, ok := s.Resources["topic-key"]; ok {
			kp := s.ResourcePolicies["topic-key"]
			ctx := map[string]any{"kms:ViaService": "sns." + Region + ".amazonaws.com", "kms:EncryptionContext:aws:sns:topicArn": topic}
			for _, a := range []string{"kms:GenerateDataKey", "kms:Decrypt"} {
				out = append(out, implicit(one(a, key, ctx, &kp), "SNS uses the topic's key for the publisher (SSE-KMS)"))
			}
		}
		return out, nil
	case "sqs":
		name := queueName(c)
		if c.Operation == "ListQueues" {
			return []Request{one(action, "*", nil, nil)}, nil
		}
		if name == "" {
			return nil, fmt.Errorf("no queue named")
		}
		arn := queueARN(name)
		ctx := map[string]any{}
		var rp *Policy
		if q := p.Queues[name]; q != nil && c.Operation != "CreateQueue" {
			rp = &Policy{Name: "run-queue-policy", Doc: q.Policy}
			if isInbox(name) {
				rp.Name = "inbox-policy" // a warm runner's (dispatcher.InboxPolicy)
			}
			for k, v := range q.Tags {
				ctx["aws:ResourceTag/"+k] = v
			}
		}
		if c.Operation == "CreateQueue" {
			var tags map[string]string
			_ = json.Unmarshal([]byte(c.Params["tags"]), &tags)
			var keys []string
			for _, k := range sortedKeys(tags) {
				ctx["aws:RequestTag/"+k] = tags[k]
				keys = append(keys, k)
			}
			if len(keys) > 0 {
				ctx["aws:TagKeys"] = keys
				return []Request{one(action, arn, ctx, nil),
					implicit(one("sqs:TagQueue", arn, ctx, nil), "tagging a queue at creation needs sqs:TagQueue too")}, nil
			}
		}
		return []Request{one(action, arn, ctx, rp)}, nil
	case "dynamodb":
		arn := s.Resources["ledger"]
		if t := c.Params["TableName"]; strings.HasPrefix(t, "arn:") {
			arn = t // deploy-trigger names the view's table by its ARN
		} else if t != "" {
			arn = fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", Region, Account, t)
		}
		if ix := c.Params["IndexName"]; ix != "" {
			arn += "/index/" + ix
		}
		var rp *Policy
		if pol, ok := s.ResourcePolicies["view"]; ok && arn == s.Resources["view-table"] {
			rp = &pol
		}
		return []Request{one(action, arn, leadingKeys(c), rp)}, nil
	case "logs":
		g := c.Params["logGroupName"]
		if g == "" {
			return nil, fmt.Errorf("no log group named")
		}
		arn := fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", Region, Account, g)
		switch c.Operation {
		case "PutLogEvents", "GetLogEvents", "CreateLogStream":
			// Authorized on the stream (the Service Authorization Reference).
			arn += ":log-stream:" + c.Params["logStreamName"]
		}
		return []Request{one(action, arn, nil, nil)}, nil
	case "ecs":
		cluster := c.Params["cluster"]
		if cluster != "" && !strings.HasPrefix(cluster, "arn:") {
			cluster = fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", Region, Account, cluster)
		}
		ctx := map[string]any{}
		if cluster != "" {
			ctx["ecs:cluster"] = cluster
		}
		switch c.Operation {
		case "RunTask":
			td := c.Params["taskDefinition"]
			ctx["ecs:enable-execute-command"] = fmt.Sprint(c.Params["enableExecuteCommand"] == "true")
			out := []Request{one(action, td, ctx, nil)}
			var tags []struct{ Key, Value string }
			_ = json.Unmarshal([]byte(c.Params["tags"]), &tags)
			if len(tags) > 0 {
				tctx := map[string]any{"ecs:CreateAction": "RunTask"}
				var keys []string
				for _, t := range tags {
					tctx["aws:RequestTag/"+t.Key] = t.Value
					keys = append(keys, t.Key)
				}
				tctx["aws:TagKeys"] = keys
				task := c.Result["TaskArn"]
				if task == "" {
					return nil, fmt.Errorf("RunTask answered no task")
				}
				out = append(out, implicit(one("ecs:TagResource", task, tctx, nil), "tags given at launch need ecs:TagResource on the new task"))
			}
			for _, role := range p.passedRoles(td) {
				out = append(out, implicit(one("iam:PassRole", role, map[string]any{"iam:PassedToService": "ecs-tasks.amazonaws.com"}, nil),
					"RunTask passes the task definition's roles to ECS"))
			}
			return out, nil
		case "StopTask", "DescribeTasks":
			var tasks []string
			if t := c.Params["task"]; t != "" {
				tasks = []string{t}
			}
			_ = json.Unmarshal([]byte(c.Params["tasks"]), &tasks)
			var out []Request
			for _, t := range tasks {
				out = append(out, one(action, t, ctx, nil))
			}
			return out, nil
		case "ListTasks":
			return []Request{one(action, "*", ctx, nil)}, nil
		}
		return nil, fmt.Errorf("no rule for %s", action)
	case "events":
		var entries []struct{ Source, DetailType string }
		_ = json.Unmarshal([]byte(c.Params["Entries"]), &entries)
		ctx := map[string]any{}
		for _, e := range entries {
			ctx["events:source"] = e.Source
			ctx["events:detail-type"] = e.DetailType
		}
		return []Request{one(action, s.Resources["event-bus"], ctx, nil)}, nil
	case "sts":
		if c.Operation != "AssumeRole" {
			return nil, fmt.Errorf("no rule for %s", action)
		}
		role, _ := s.localDeploymentRoleARN(c.Params["RoleArn"])
		var rp *Policy
		for _, r := range s.Roles {
			if r.ARN == role || strings.HasSuffix(role, "/"+r.ARN[strings.LastIndex(r.ARN, "/")+1:]) {
				t := r.Trust
				rp = &t
			}
		}
		ctx := map[string]any{"sts:RoleSessionName": c.Params["RoleSessionName"]}
		out := []Request{}
		if si := c.Params["SourceIdentity"]; si != "" {
			ctx["sts:SourceIdentity"] = si
			out = append(out, implicit(one("sts:SetSourceIdentity", role, ctx, rp), "a session with a source identity needs sts:SetSourceIdentity"))
		}
		if strings.Contains(strings.Join(mapKeys(c.Params), " "), "Tags.member") {
			out = append(out, implicit(one("sts:TagSession", role, ctx, rp), "session tags need sts:TagSession"))
		}
		return append([]Request{one(action, role, ctx, rp)}, out...), nil
	}
	return nil, fmt.Errorf("no rule for %s", action)
}

// passedRoles are the task and execution roles of a task definition.
func (p *Replay) passedRoles(td string) []string {
	for k, v := range p.Stack.Resources {
		if strings.HasPrefix(k, "task-definition:") && v == td {
			job := strings.TrimPrefix(k, "task-definition:")
			var out []string
			for _, n := range []string{"runner:" + job, "execution"} {
				if r := p.Stack.Roles[n]; r != nil {
					out = append(out, r.ARN)
				}
			}
			return out
		}
	}
	return nil
}

func mapKeys(m map[string]string) []string { return sortedKeys(m) }

// batchActions are operations AWS authorizes as another action.
var batchActions = map[string]string{
	"sqs:SendMessageBatch":             "sqs:SendMessage",
	"sqs:DeleteMessageBatch":           "sqs:DeleteMessage",
	"sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

// leadingKeys is the dynamodb:LeadingKeys context of an item call: the
// partition key value its Key (GetItem, UpdateItem, DeleteItem) or Item
// (PutItem) names, by the key attributes of the broker's tables (the
// ledger's run_id, the view's view). Without it a ForAllValues condition
// on the key (the view table's grants) would hold vacuously.
func leadingKeys(c localbroker.Call) map[string]any {
	raw := c.Params["Key"]
	if raw == "" {
		raw = c.Params["Item"]
	}
	var item map[string]map[string]any
	if raw == "" || json.Unmarshal([]byte(raw), &item) != nil {
		return nil
	}
	for _, attr := range []string{ledger.AttrRunID, brokerview.KeyAttr} {
		if v, ok := item[attr]["S"].(string); ok {
			return map[string]any{"dynamodb:LeadingKeys": []string{v}}
		}
	}
	return nil
}
