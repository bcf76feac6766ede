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
	return d.verifier.Verify(ctx, proof, exp)
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
	it, ok, err := d.ledger.get(ctx, req.RunID)
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
	for _, e := range d.cfg.TrustedPrincipals {
		if identity.MatchTrusted(p, e) {
			return true
		}
	}
	for _, e := range d.set.ExtraPrincipals {
		if identity.MatchTrusted(p, e) {
			return true
		}
	}
	return false
}

// mayRun decides whether p may run job: the job's allowed_principals when
// it has them, otherwise any trusted principal.
func (d *Dispatcher) mayRun(p identity.Principal, job string, allowed []string) *rejection {
	if len(allowed) == 0 {
		if d.trusted(p) {
			return nil
		}
		return &rejection{protocol.RejectUnauthorized, fmt.Sprintf("%s may not run job %q: it is not one of this broker's trusted principals", p.ARN, job)}
	}
	for _, pat := range allowed {
		if ok, err := identity.MatchPrincipal(p, pat); err == nil && ok {
			return nil
		}
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

// QueuePolicy is a run queue's resource policy: only the requesting
// principal may read and delete its messages, and nothing without TLS.
//
// For an assumed role the grant is to the role (every session of it: a
// long run outlives a session, and refreshed credentials may carry another
// session name), matched on aws:PrincipalArn, which for a role session is
// the role's ARN with its path; the Principal element names the role's
// account, because STS does not report the role's path and a policy naming
// a role ARN without its path would not resolve. The role name is unique
// in its account whatever the path, so role/NAME and role/*/NAME name one
// role. For an IAM user, its ARN exactly.
func QueuePolicy(queueARN string, p identity.Principal) (string, error) {
	if p.Account == "" || p.Partition == "" {
		return "", errors.New("queue policy: no verified principal")
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
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid":       "RequesterReadsRun",
				"Effect":    "Allow",
				"Principal": map[string]any{"AWS": "arn:" + p.Partition + ":iam::" + p.Account + ":root"},
				"Action": []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
					"sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
				"Resource":  queueARN,
				"Condition": map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": principalARNs}},
			},
			map[string]any{
				"Sid":       "DenyInsecureTransport",
				"Effect":    "Deny",
				"Principal": "*",
				"Action":    "sqs:*",
				"Resource":  queueARN,
				"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}},
			},
		},
	}
	b, err := json.Marshal(doc)
	return string(b), err
}

// principalTag is the verified principal as a tag value (at most 256
// characters; an assumed-role ARN is at most about 190).
func principalTag(p identity.Principal) string { return tagValue(p.ARN) }
