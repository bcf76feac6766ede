package identity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// This file ties proofs to the broker's requests (package protocol): the
// digest over a request's binding fields, signing a request, and what the
// dispatcher expects of a request's proof. deploy-trigger, the dispatcher,
// local mode and the tests all go through these, so they cannot disagree
// on what a proof is bound to.

// RequestDigest is Digest over req.BindingFields(audience): every field of
// the request but the proof, and the broker topic's ARN.
func RequestDigest(req *protocol.Request, audience string) [32]byte {
	pairs := req.BindingFields(audience)
	fields := make([]Field, len(pairs))
	for i, p := range pairs {
		fields[i] = Field{Name: p[0], Value: p[1]}
	}
	return Digest(fields)
}

// RequestSigner signs requests for one broker topic.
type RequestSigner struct {
	Credentials aws.CredentialsProvider
	// Topic is the broker topic ARN: the audience, and where partition and
	// region come from.
	Topic string
	// Endpoint overrides the STS URL (local mode, tests): set only when an
	// endpoint override is configured, and then equal to the dispatcher's.
	Endpoint string
	// Now is the signing time; nil means time.Now.
	Now func() time.Time
}

// TopicPartitionRegion takes partition and region from a topic ARN.
func TopicPartitionRegion(topicARN string) (partition, region string, err error) {
	parts := strings.Split(topicARN, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[1] == "" || parts[3] == "" {
		return "", "", fmt.Errorf("identity: %q is not an SNS topic ARN", clip(topicARN))
	}
	return parts[1], parts[3], nil
}

// Sign sets req.Proof to a proof bound to req (as it is now: sign last) and
// to the topic.
func (s RequestSigner) Sign(ctx context.Context, req *protocol.Request) error {
	partition, region, err := TopicPartitionRegion(s.Topic)
	if err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	req.Proof = nil
	p, err := Sign(ctx, SignInput{Credentials: s.Credentials, Region: region, Partition: partition,
		Audience: s.Topic, Digest: RequestDigest(req, s.Topic), Endpoint: s.Endpoint, Now: now()})
	if err != nil {
		return err
	}
	b, err := p.Encode()
	if err != nil {
		return err
	}
	req.Proof = b
	return nil
}

// RequestProof decodes a request's proof and returns what it must be bound
// to: this broker (audience), this request's digest, and the request's
// own validity (requested_at, expires_at).
func RequestProof(req *protocol.Request, audience string) (*Proof, Expect, error) {
	exp := Expect{Audience: audience, Digest: RequestDigest(req, audience), NotBefore: req.RequestedAt, NotAfter: req.ExpiresAt}
	if len(req.Proof) == 0 {
		return nil, exp, fail(KindMalformed, "the request carries no proof of identity")
	}
	p, err := DecodeProof(req.Proof)
	return p, exp, err
}

// Owner is who a principal acts as for the broker's per-requester rules
// (run queue access, cancel and release): the role's ARN (without path) for
// an assumed role, so every session of one role is one requester, and the
// user's ARN for an IAM user.
func (p Principal) Owner() string {
	if p.Kind == PrincipalAssumedRole {
		return p.RoleARN
	}
	return p.ARN
}

// OwnerOfARN is Owner for a principal ARN as stored (the ledger keeps the
// verified ARN): the role ARN of an assumed-role ARN, otherwise the ARN.
func OwnerOfARN(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		if rs := strings.Split(strings.TrimPrefix(parts[5], "assumed-role/"), "/"); len(rs) == 2 {
			return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + rs[0]
		}
	}
	return arn
}

// MatchTrusted reports whether p is named by an entry of a broker's
// trusted_principals: a role, session or user pattern (MatchPrincipal), a
// 12-digit account id, or an account's root ARN (arn:P:iam::ACCOUNT:root),
// which trusts every principal of that account. Entries of another form
// never match.
func MatchTrusted(p Principal, entry string) bool {
	if accountRE.MatchString(entry) {
		return p.Account == entry
	}
	if entry == "arn:"+p.Partition+":iam::"+p.Account+":root" {
		return true
	}
	ok, err := MatchPrincipal(p, entry)
	return err == nil && ok
}

// TrustedBy reports whether an entry of any of the lists names p
// (MatchTrusted): the broker's trusted_principals, and the stack's own
// principals beside them.
func TrustedBy(p Principal, lists ...[]string) bool {
	for _, l := range lists {
		for _, e := range l {
			if MatchTrusted(p, e) {
				return true
			}
		}
	}
	return false
}

// MayRun is the broker's one rule for who may run a job: when the job has
// allowed_principals (MatchPrincipal patterns), exactly those; otherwise
// any trusted principal (trusted says whether p is one). The dispatcher
// decides with it; deploy-trigger's view of the catalogue and local mode's
// choice of identity ask it the same question.
func MayRun(p Principal, allowed []string, trusted bool) bool {
	if len(allowed) == 0 {
		return trusted
	}
	for _, pat := range allowed {
		if ok, err := MatchPrincipal(p, pat); err == nil && ok {
			return true
		}
	}
	return false
}

// PrincipalFromARN rebuilds a Principal from a verified ARN as stored (in
// the ledger): partition, account, kind, role or user. UserID is not
// stored and stays empty. It is for ARNs that Verify returned earlier,
// never for ARNs taken from a message.
func PrincipalFromARN(arn string) (Principal, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return Principal{}, fmt.Errorf("identity: %q is not an ARN", clip(arn))
	}
	p, err := parsePrincipal(arn, parts[4], "stored")
	p.UserID = ""
	return p, err
}
