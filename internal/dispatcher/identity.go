package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// DecisionRefused is the audit decision for a request whose proof of
// identity did not verify: nothing was created for it (no ledger item, no
// queue, no task), since nobody proven can be answered.
const DecisionRefused = "refused"

// audience is what a proof must be bound to: this broker's topic ARN (the
// topic is named after the broker, in the dispatcher's own account, region
// and partition).
func (d *Dispatcher) audience() string {
	return fmt.Sprintf("arn:%s:sns:%s:%s:%s", partition(d.set.Cluster, d.set.Region), d.set.Region, d.set.AccountID, d.cfg.Broker.Name)
}

// newVerifier is built once, when the dispatcher is: the STS endpoint comes
// from the dispatcher's partition and region (or Settings.STSEndpoint in
// local mode and tests), never from a message.
func (d *Dispatcher) newVerifier() (*identity.Verifier, error) {
	return identity.NewVerifier(identity.VerifierConfig{
		Partition: partition(d.set.Cluster, d.set.Region), Region: d.set.Region,
		Endpoint: d.set.STSEndpoint, Transport: d.set.STSTransport, Now: func() time.Time { return d.now() },
	})
}

// verify proves who sent req: the proof must be bound to this broker and to
// every other field of req, be fresh, and STS must vouch for its signature.
// An error that is an *identity.Error and not Retryable is a refusal; any
// other error (STS unreachable, no verifier) is worth a retry.
func (d *Dispatcher) verify(ctx context.Context, req *protocol.Request) (identity.Principal, error) {
	if d.verifierErr != nil {
		return identity.Principal{}, fmt.Errorf("the dispatcher cannot verify proofs of identity: %w", d.verifierErr)
	}
	proof, exp, err := identity.RequestProof(req, d.audience())
	if err != nil {
		return identity.Principal{}, err
	}
	// The request's own expiry bounds the proof, with the clock skew the
	// broker tolerates for the request itself.
	exp.NotAfter = exp.NotAfter.Add(d.cfg.Broker.ClockSkew.D())
	return bounded(d, ctx, "STS GetCallerIdentity (the request's proof of identity)", func(c context.Context) (identity.Principal, error) {
		return d.verifier.Verify(c, proof, exp)
	})
}

// verifiedBefore recognises a run request delivered again after its proof
// went stale (a Lambda retry after the request expired): the very same
// body, proof included, was verified when it first claimed the run, and the
// ledger keeps its hash and its verified principal. The retry then finishes
// what the first delivery left undone (or answers "expired") on the run's
// queue. Any other stale proof stays refused.
func (d *Dispatcher) verifiedBefore(ctx context.Context, req *protocol.Request, body []byte, verr error) (identity.Principal, bool) {
	var ie *identity.Error
	if req.Kind != protocol.KindRun || !errors.As(verr, &ie) || ie.Kind != identity.KindStale {
		return identity.Principal{}, false
	}
	it, ok, err := d.ledger.Get(ctx, req.RunID)
	if err != nil || !ok || it.RequestedBy == "" || it.RequestHash != requestHash(body) {
		return identity.Principal{}, false
	}
	p, err := identity.PrincipalFromARN(it.RequestedBy)
	return p, err == nil
}

// refused reports whether err, from verify, refuses the request for good.
func refused(err error) bool {
	var ie *identity.Error
	return errors.As(err, &ie) && !ie.Retryable()
}

// trusted reports whether p is one of the broker's trusted principals (the
// catalogue's trusted_principals, and the stack's own trigger role).
func (d *Dispatcher) trusted(p identity.Principal) bool {
	return identity.TrustedBy(p, d.cfg.TrustedPrincipals, d.set.ExtraPrincipals)
}

// mayRun decides whether p may run job (identity.MayRun), and says why not.
func (d *Dispatcher) mayRun(p identity.Principal, job string, allowed []string) *rejection {
	if identity.MayRun(p, allowed, d.trusted(p)) {
		return nil
	}
	if len(allowed) == 0 {
		return &rejection{protocol.RejectUnauthorized, fmt.Sprintf("%s may not run job %q: it is not one of this broker's trusted principals", p.ARN, job)}
	}
	return &rejection{protocol.RejectUnauthorized, fmt.Sprintf("%s may not run job %q: it is not in the job's allowed_principals", p.ARN, job)}
}

// controlPattern is what a controller of a run p may start under allowed
// must match besides being of p's role: "" when the job has no
// allowed_principals or a role-wide (or user) entry lets p in, otherwise
// the first session pattern ("arn:…:sts::…:assumed-role/ROLE/GLOB") that
// matches p. Without it, a session the job's allowed_principals exclude
// (jenkins-7 where only release-* may run) could cancel or release a run of
// a session they include, because both are sessions of one role.
func controlPattern(p identity.Principal, allowed []string) string {
	first := ""
	for _, pat := range allowed {
		if ok, err := identity.MatchPrincipal(p, pat); err != nil || !ok {
			continue
		}
		if !sessionPattern(pat) {
			return ""
		}
		if first == "" {
			first = pat
		}
	}
	return first
}

// sessionPattern reports whether an allowed_principals entry names sessions
// of a role by a glob (assumed-role/ROLE/GLOB) rather than the whole role.
func sessionPattern(pat string) bool {
	parts := strings.SplitN(pat, ":", 6)
	return len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/")
}

// mayControl decides whether p may cancel or release the run requested by
// requestedBy (a verified ARN from the ledger): the requester itself, any
// session of the same role (a CI job's cancel step may hold another session
// of the role it started the run with) that also matches the run's session
// pattern when it has one (pattern, ledger controlled_by), or an operator.
func (d *Dispatcher) mayControl(p identity.Principal, requestedBy, pattern string) bool {
	if requestedBy != "" && p.Owner() == identity.OwnerOfARN(requestedBy) {
		if pattern == "" {
			return true
		}
		if ok, err := identity.MatchPrincipal(p, pattern); err == nil && ok {
			return true
		}
	}
	for _, pat := range d.cfg.Operators {
		if ok, err := identity.MatchPrincipal(p, pat); err == nil && ok {
			return true
		}
	}
	return false
}

// RunQueueAccess is who may use one run queue: what QueuePolicy writes
// into the queue's policy.
type RunQueueAccess struct {
	QueueARN string
	// Requester is the verified principal the run was admitted for.
	Requester identity.Principal
	// SessionPattern is the job's allowed_principals session pattern that
	// admitted the requester (controlPattern), "" when its role (or user)
	// was admitted as a whole.
	SessionPattern string
	// BrokerRoles is the ARN pattern of the broker's own roles (the
	// dispatcher's and the runners' task roles, all under
	// config.RolePath): the only principals that may send to, tag, change
	// or delete a run queue.
	BrokerRoles string
}

// Statement ids of a run queue's policy. They are stable: the stack's
// documentation, the trust tables and the IAM evaluation tests name them.
const (
	SidRequesterReadsRun            = "RequesterReadsRun"
	SidOnlyRequesterReadsRun        = "OnlyRequesterReadsRun"
	SidOnlyAdmittedSessionsReadRun  = "OnlyAdmittedSessionsReadRun"
	SidOnlyBrokerWritesOrManagesRun = "OnlyBrokerWritesOrManagesRun"
	SidDenyInsecureTransport        = "DenyInsecureTransport"
)

// RunQueueReadActions are what the requester, and nobody else, may do on
// its run's queue: read its records, delete them, change their visibility,
// read the queue's attributes, purge it (the last only in the Deny: nobody
// is granted it). GetQueueUrl is granted too but not denied to others: the
// URL follows from the queue's name.
var RunQueueReadActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
	"sqs:GetQueueAttributes", "sqs:PurgeQueue"}

// RunQueueBrokerActions are what only the broker's own roles may do on a
// run queue: write records into it (the runner, the dispatcher), change its
// tags, attributes or permissions (which would lift these Denies), delete
// it (the dispatcher, on release or by the sweep).
var RunQueueBrokerActions = []string{"sqs:SendMessage", "sqs:DeleteQueue", "sqs:SetQueueAttributes",
	"sqs:AddPermission", "sqs:RemovePermission", "sqs:TagQueue", "sqs:UntagQueue"}

// QueuePolicy is a run queue's resource policy. It isolates the run from
// every other principal, whatever identity policies exist in the account
// (a same-account role with sqs:* on every queue, the GitHub trigger role
// of another workflow): an explicit Deny in a resource policy wins over any
// Allow (IAM's policy evaluation logic), so
//
//   - RequesterReadsRun allows the requester to read and delete its records;
//   - OnlyRequesterReadsRun denies RunQueueReadActions to every principal
//     that is not the requester: not its role (aws:PrincipalArn is the
//     role's ARN, with its path, for every session of it), or not its user.
//     Neither the runner nor the dispatcher ever reads a run queue, so
//     neither is excepted;
//   - OnlyAdmittedSessionsReadRun, when only a session pattern of the job's
//     allowed_principals admitted the requester, denies them as well to
//     the role's sessions the pattern does not name (aws:userid is
//     "ROLEID:SESSION"): two Denies, since one Deny's conditions are ANDed;
//   - OnlyBrokerWritesOrManagesRun denies RunQueueBrokerActions to every
//     principal that is not one of the broker's own roles, so nobody else
//     can forge a record, delete the queue or rewrite this policy;
//   - DenyInsecureTransport denies everything without TLS.
//
// None of this depends on the run id being secret.
//
// The Allow names the requester's account as Principal and matches the
// role on aws:PrincipalArn: STS does not report a role's path and a policy
// naming a role ARN without its path would not resolve; the role name is
// unique in its account whatever the path, so role/NAME and role/*/NAME
// name one role.
func QueuePolicy(a RunQueueAccess) (string, error) {
	p := a.Requester
	if p.Account == "" || p.Partition == "" {
		return "", errors.New("queue policy: no verified principal")
	}
	if a.QueueARN == "" || !strings.HasPrefix(a.BrokerRoles, "arn:") {
		return "", errors.New("queue policy: no queue ARN or broker role pattern")
	}
	var principalARNs []string
	switch p.Kind {
	case identity.PrincipalAssumedRole:
		base := "arn:" + p.Partition + ":iam::" + p.Account + ":role/"
		principalARNs = []string{base + p.RoleName, base + "*/" + p.RoleName}
	case identity.PrincipalUser:
		principalARNs = []string{p.UserARN}
	default:
		return "", fmt.Errorf("queue policy: principal %s is neither a role session nor a user", p.ARN)
	}
	var sessions []any // OnlyAdmittedSessionsReadRun, for a session pattern
	if p.Kind == identity.PrincipalAssumedRole && a.SessionPattern != "" {
		// The Allow stays role-wide: the Deny narrows it, and fails open
		// only to the role-wide Deny (see its condition).
		userID := sessionUserID(p, a.SessionPattern)
		sessions = append(sessions, map[string]any{
			"Sid":       SidOnlyAdmittedSessionsReadRun,
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    RunQueueReadActions,
			"Resource":  a.QueueARN,
			// Null false: only where IAM reports aws:userid (every signed
			// request, by the documentation); were it ever missing, the
			// role-wide Deny above still stands, and the requester's own
			// sessions are not locked out.
			"Condition": map[string]any{"StringNotLike": map[string]any{"aws:userid": userID}, "Null": map[string]any{"aws:userid": "false"}},
		})
	}
	statements := []any{
		map[string]any{
			"Sid":       SidRequesterReadsRun,
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": "arn:" + p.Partition + ":iam::" + p.Account + ":root"},
			"Action": []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
				"sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
			"Resource":  a.QueueARN,
			"Condition": map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": principalARNs}},
		},
		map[string]any{
			"Sid":       SidOnlyRequesterReadsRun,
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    RunQueueReadActions,
			"Resource":  a.QueueARN,
			"Condition": map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": principalARNs}},
		},
	}
	statements = append(statements, sessions...)
	statements = append(statements,
		map[string]any{
			"Sid":       SidOnlyBrokerWritesOrManagesRun,
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    RunQueueBrokerActions,
			"Resource":  a.QueueARN,
			"Condition": map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": a.BrokerRoles}},
		},
		map[string]any{
			"Sid":       SidDenyInsecureTransport,
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    "sqs:*",
			"Resource":  a.QueueARN,
			"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}},
		})
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	return string(b), err
}

// sessionUserID is the aws:userid pattern of the sessions a session
// pattern admits: "*:GLOB" (STS's user id of a role session is
// "ROLEID:SESSION"; role ids hold no ':'), which, with the role matched on
// aws:PrincipalArn, names exactly the sessions of the requester's role the
// job admits. A glob with more than IAM's wildcards ('*', '?': a path.Match
// character class or escape) cannot be written as StringLike: then the
// requester's own session name only, stricter, never looser.
func sessionUserID(p identity.Principal, pattern string) string {
	glob := pattern[strings.LastIndex(pattern, "/")+1:]
	if strings.ContainsAny(glob, `[]\`) {
		glob = p.SessionName
	}
	return "*:" + glob
}

// runQueuePolicy is the policy of the run queue name, made for req by p.
func (d *Dispatcher) runQueuePolicy(name string, req *protocol.Request, p identity.Principal) (string, error) {
	return queueAccess{p: p, pattern: controlPattern(p, d.cfg.Jobs[req.Job].AllowedPrincipals)}.policy(d, d.queueARN(name))
}

// requesterTags are the run queue's tags naming its requester:
// protocol.TagRequester, the verified ARN (for people and audit), and
// protocol.TagRequesterPrincipal, what aws:PrincipalArn is for the
// requester when its role has no path (the role's ARN; a user's ARN): the
// stack's GitHub trigger role reads only queues whose
// TagRequesterPrincipal is its own ${aws:PrincipalArn}, and a CI role's
// own policy can do the same.
func requesterTags(p identity.Principal) map[string]string {
	tags := map[string]string{protocol.TagRequester: tagValue(p.ARN)}
	switch p.Kind {
	case identity.PrincipalAssumedRole:
		tags[protocol.TagRequesterPrincipal] = tagValue(p.RoleARN)
	case identity.PrincipalUser:
		tags[protocol.TagRequesterPrincipal] = tagValue(p.UserARN)
	}
	return tags
}

// principalTag is the verified principal as a tag value (at most 256
// characters; an assumed-role ARN is at most about 190).
func principalTag(p identity.Principal) string { return tagValue(p.ARN) }
