package iamcheck

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Request is one IAM authorization request to evaluate.
type Request struct {
	ID     string
	Origin string // recorded, implicit (AWS checks it behind a recorded call), by hand, replayed
	Note   string // what it stands for
	Caller string // report name of the principal: dispatcher, job:<name>, reader, github-trigger, or a CI ARN
	// Principal is the session ARN; PrincipalARN its role's (aws:PrincipalArn).
	Principal, PrincipalARN string
	Action, Resource        string
	Context                 map[string]any
	Identity                []Policy
	ResourcePolicy          *Policy
}

// ciPolicy stands for a CI account's own policy on its role: the evaluation
// assumes it grants what deploy-trigger does (it is not in the template), so
// what decides is the broker account's resource policy.
var ciPolicy = Policy{Name: "ci-account/own-policy", Doc: map[string]any{"Version": "2012-10-17",
	"Statement": []any{map[string]any{"Sid": "AssumedCiAccountGrant", "Effect": "Allow", "Action": "*", "Resource": "*"}}}}

// Replay turns recorded calls into authorization requests.
type Replay struct {
	Stack *Stack
	// Queues are the run queues' policies and tags as the dispatcher wrote
	// them (from the recorded CreateQueue calls), by queue name.
	Queues map[string]*RunQueue
	// Requests are the requests built so far; Skipped counts the calls
	// that need no authorization or are AWS's own (by reason).
	Requests []Request
	Skipped  map[string]int
	// sessions are the context keys of the sessions assumed in the
	// recording (aws:SourceIdentity, aws:PrincipalTag/*), by session ARN.
	sessions map[string]map[string]any
	// Errors are calls that could not be attributed or understood.
	Errors []string
	// BrokerRoles is the ARN pattern of the broker's own roles, as the
	// dispatcher names them in a run queue's policy.
	BrokerRoles string
}

// RunQueue is a run queue as created.
type RunQueue struct {
	ARN       string
	Policy    map[string]any
	Tags      map[string]string
	Requester string // the session ARN of its requester
}

// NewReplay starts a replay against a stack.
func NewReplay(s *Stack) *Replay {
	return &Replay{Stack: s, Queues: map[string]*RunQueue{}, Skipped: map[string]int{}, sessions: map[string]map[string]any{}}
}

// caller maps a recorded principal to its report name, session ARN, role
// ARN and identity policies.
func (p *Replay) caller(principal string) (name, session, roleARN string, pols []Policy, ok bool) {
	role := func(n, sess string) (string, string, string, []Policy, bool) {
		r := p.Stack.Roles[n]
		if r == nil {
			return "", "", "", nil, false
		}
		short := r.ARN[strings.LastIndex(r.ARN, "/")+1:]
		return n, fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", Account, short, sess), r.ARN, r.Policies, true
	}
	switch {
	case principal == "dispatcher":
		return role("dispatcher", "dispatcher-function")
	case strings.HasPrefix(principal, "task:"):
		return role(jobRole(strings.TrimPrefix(principal, "task:")), "ecs-task")
	case strings.HasPrefix(principal, "arn:"):
		pr, err := identity.PrincipalFromARN(principal)
		if err != nil || pr.Kind != identity.PrincipalAssumedRole {
			return "", "", "", nil, false
		}
		roleARN := "arn:aws:iam::" + pr.Account + ":role/" + pr.RoleName
		if pr.Account == Account {
			for _, r := range p.Stack.Roles {
				if strings.HasSuffix(r.ARN, "/"+pr.RoleName) {
					return r.Name, principal, r.ARN, r.Policies, true
				}
			}
			// A job's session in local mode (localroles.go).
			if r := p.Stack.localDeploymentRole(pr.RoleName); r != nil {
				return r.Name, principal, r.ARN, r.Policies, true
			}
			// A session of the broker's account that is no role of the
			// stack: never guessed at (the test reports it).
			return "", "", "", nil, false
		}
		return roleARN, principal, roleARN, []Policy{ciPolicy}, true
	}
	return "", "", "", nil, false
}

// Add turns one recorded call into requests.
func (p *Replay) Add(c localbroker.Call) {
	if c.Principal == "aws-service" {
		p.Skipped["made by AWS itself in the cloud (local mode's ECS agent and SNS delivery)"]++
		return
	}
	if c.Service == "sts" && c.Operation == "GetCallerIdentity" {
		p.Skipped["sts:GetCallerIdentity (needs no permission)"]++
		return
	}
	if c.Status >= 300 {
		p.Skipped[fmt.Sprintf("%s:%s answered HTTP %d by the emulator (a queue not there yet or any more, a long poll cut short): AWS answers those with an error too; not judged", c.Service, c.Operation, c.Status)]++
		return
	}
	name, session, roleARN, pols, ok := p.caller(c.Principal)
	if !ok {
		p.Errors = append(p.Errors, fmt.Sprintf("%s:%s by %s: the caller is not a role of the stack nor a CI principal", c.Service, c.Operation, c.Principal))
		return
	}
	if c.Service == "sqs" && c.Operation == "CreateQueue" {
		p.noteQueue(c, session)
	}
	if c.Service == "sts" && c.Operation == "AssumeRole" && c.Result["Arn"] != "" {
		p.noteSession(c)
	}
	base := Request{Origin: "recorded", Caller: name, Principal: session, PrincipalARN: roleARN, Identity: pols}
	reqs, err := p.requests(base, c)
	if err != nil {
		p.Errors = append(p.Errors, fmt.Sprintf("%s:%s by %s: %v", c.Service, c.Operation, c.Principal, err))
		return
	}
	// A CI principal's ledger and run log reads go through the reader
	// role in AWS (deploy-trigger runs/show/logs --role-arn): local mode
	// reads with the CI session itself.
	// The published view is read with the caller's own credentials (its
	// table's policy names the trusted principals).
	viewRead := c.Service == "dynamodb" && len(reqs) == 1 && reqs[0].Resource == p.Stack.Resources["view-table"]
	if strings.HasPrefix(name, "arn:") && (c.Service == "dynamodb" || c.Service == "logs") && !viewRead {
		if rd := p.Stack.Roles["reader"]; rd != nil {
			_, s, ra, rp, _ := p.caller("arn:aws:sts::" + Account + ":assumed-role/" + rd.ARN[strings.LastIndex(rd.ARN, "/")+1:] + "/viewer")
			for _, r := range reqs {
				r.Origin, r.Caller, r.Principal, r.PrincipalARN, r.Identity = "replayed", "reader", s, ra, rp
				r.Note = "a viewer's read through the reader role (local mode reads with the CI session)"
				p.push(r)
			}
		} else {
			p.Skipped["a CI session's ledger and run log reads (runs, show, logs): without viewers the stack has no reader role and AWS refuses them"]++
		}
		return
	}
	for _, r := range reqs {
		p.push(r)
	}
	// Every trigger call again as the GitHub trigger role, with the run
	// queue policy the dispatcher writes for that requester (and its reads
	// of the view and of run pointers, which the view table's policy grants).
	if gh := p.Stack.Roles["github-trigger"]; gh != nil && strings.HasPrefix(name, "arn:") && (c.Service == "sns" || c.Service == "sqs" || viewRead) {
		ghSession := "arn:aws:sts::" + Account + ":assumed-role/" + gh.ARN[strings.LastIndex(gh.ARN, "/")+1:] + "/gha-org-app-1"
		reqs, _ := p.requestsAs(base, c, ghSession)
		for _, r := range reqs {
			r.Origin, r.Caller, r.Principal, r.PrincipalARN, r.Identity = "replayed", "github-trigger", ghSession, gh.ARN, gh.Policies
			r.Note = "the same call by the GitHub trigger role"
			p.push(r)
		}
	}
}

func (p *Replay) push(r Request) {
	r.ID = fmt.Sprint(len(p.Requests))
	ctx := map[string]any{}
	for k, v := range r.Context {
		ctx[k] = v
	}
	r.Context = ctx
	for k, v := range p.sessions[r.Principal] {
		r.Context[k] = v
	}
	r.Context["aws:PrincipalArn"] = r.PrincipalARN
	r.Context["aws:PrincipalAccount"] = accountOf(r.PrincipalARN)
	if _, ok := r.Context["aws:SecureTransport"]; !ok {
		r.Context["aws:SecureTransport"] = "true"
	}
	p.Requests = append(p.Requests, r)
}

func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

// noteQueue keeps a run queue's policy and tags as the dispatcher wrote them.
func (p *Replay) noteQueue(c localbroker.Call, requesterSession string) {
	var attrs map[string]string
	var tags map[string]string
	_ = json.Unmarshal([]byte(c.Params["Attributes"]), &attrs)
	_ = json.Unmarshal([]byte(c.Params["tags"]), &tags)
	q := &RunQueue{ARN: queueARN(c.Params["QueueName"]), Tags: tags}
	_ = json.Unmarshal([]byte(attrs["Policy"]), &q.Policy)
	p.Queues[c.Params["QueueName"]] = q
}

// isInbox reports whether a queue is a warm runner's inbox
// (protocol.InboxName), not a run queue.
func isInbox(name string) bool {
	_, slot, ok := strings.Cut(name, "-warm-")
	return ok && protocol.ValidWarmSlotID("warm-"+slot)
}

func queueARN(name string) string { return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", Region, Account, name) }

// queueName is the queue a request names, by URL or name.
func queueName(c localbroker.Call) string {
	if u := c.Params["QueueUrl"]; u != "" {
		return u[strings.LastIndex(u, "/")+1:]
	}
	return c.Params["QueueName"]
}

// requestsAs is requests with run queue policies rewritten for another
// requester session.
func (p *Replay) requestsAs(base Request, c localbroker.Call, session string) ([]Request, error) {
	reqs, err := p.requests(base, c)
	if err != nil {
		return nil, err
	}
	q := p.Queues[queueName(c)]
	if c.Service != "sqs" || q == nil {
		return reqs, nil
	}
	rp, err := p.queuePolicyFor(q, session)
	if err != nil {
		return nil, err
	}
	// The queue's tags name its requester as the dispatcher wrote them:
	// the session, or its role, becomes the new requester's.
	from, _ := identity.PrincipalFromARN(c.Principal)
	to, _ := identity.PrincipalFromARN(session)
	fromRole := "arn:aws:iam::" + from.Account + ":role/" + from.RoleName
	toRole := "arn:aws:iam::" + to.Account + ":role/" + to.RoleName
	for i := range reqs {
		reqs[i].ResourcePolicy = rp
		for k, v := range reqs[i].Context {
			if sv, ok := v.(string); ok && strings.HasPrefix(k, "aws:ResourceTag/") {
				reqs[i].Context[k] = strings.ReplaceAll(strings.ReplaceAll(sv, c.Principal, session), fromRole, toRole)
			}
		}
	}
	return reqs, nil
}

// queuePolicyFor is the policy the dispatcher writes on q for a run
// requested by session (its own code: dispatcher.QueuePolicy).
func (p *Replay) queuePolicyFor(q *RunQueue, session string) (*Policy, error) {
	pr, err := identity.PrincipalFromARN(session)
	if err != nil {
		return nil, err
	}
	doc, err := dispatcher.QueuePolicy(dispatcher.RunQueueAccess{QueueARN: q.ARN, Requester: pr, BrokerRoles: p.BrokerRoles})
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		return nil, err
	}
	return &Policy{Name: "run-queue-policy", Doc: m}, nil
}

// jobRole is the report name of a job's task role (the runner's): the job
// name as the stack's logical ids spell it (letters and digits only).
func jobRole(job string) string {
	var b strings.Builder
	for _, r := range job {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return "runner:" + b.String()
}

// noteSession keeps the context keys a session assumed in the recording
// carries on each of its calls: its source identity and session tags.
func (p *Replay) noteSession(c localbroker.Call) {
	ctx := map[string]any{}
	if si := c.Params["SourceIdentity"]; si != "" {
		ctx["aws:SourceIdentity"] = si
	}
	for i := 1; ; i++ {
		k, ok := c.Params[fmt.Sprintf("Tags.member.%d.Key", i)]
		if !ok {
			break
		}
		ctx["aws:PrincipalTag/"+k] = c.Params[fmt.Sprintf("Tags.member.%d.Value", i)]
	}
	p.sessions[c.Result["Arn"]] = ctx
}
