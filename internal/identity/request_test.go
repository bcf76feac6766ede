package identity

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestPrincipalHelpers(t *testing.T) {
	role, err := PrincipalFromARN("arn:aws:sts::111122223333:assumed-role/github-deployer/gha-org-app-1234")
	if err != nil || role.Owner() != "arn:aws:iam::111122223333:role/github-deployer" || role.SessionName != "gha-org-app-1234" {
		t.Fatalf("%+v %v", role, err)
	}
	user, err := PrincipalFromARN("arn:aws:iam::111122223333:user/ops/alice")
	if err != nil || user.Owner() != user.ARN {
		t.Fatalf("%+v %v", user, err)
	}
	if _, err := PrincipalFromARN("arn:aws:iam::111122223333:role/x"); err == nil {
		t.Error("a role ARN is not a principal STS reports")
	}
	for arn, want := range map[string]string{
		"arn:aws:sts::111122223333:assumed-role/r/s1":    "arn:aws:iam::111122223333:role/r",
		"arn:aws-cn:sts::111122223333:assumed-role/r/s1": "arn:aws-cn:iam::111122223333:role/r",
		"arn:aws:iam::111122223333:user/u":               "arn:aws:iam::111122223333:user/u",
		"":                                               "",
	} {
		if got := OwnerOfARN(arn); got != want {
			t.Errorf("OwnerOfARN(%q) = %q, want %q", arn, got, want)
		}
	}
	for entry, want := range map[string]bool{
		"111122223333":                                      true,
		"999999999999":                                      false,
		"arn:aws:iam::111122223333:root":                    true,
		"arn:aws-cn:iam::111122223333:root":                 false,
		"arn:aws:iam::111122223333:role/github-deployer":    true,
		"arn:aws:iam::111122223333:role/ci/github-deployer": true,  // path ignored
		"arn:aws:iam::999999999999:role/github-deployer":    false, // never by name alone
		"github-deployer":                                   false,
		"*":                                                 false,
	} {
		if got := MatchTrusted(role, entry); got != want {
			t.Errorf("MatchTrusted(%q) = %v, want %v", entry, got, want)
		}
	}
}

// A request signed by RequestSigner passes the verifier's offline checks
// for that request and topic, and fails them for any other.
func TestRequestSignerBindsTheRequest(t *testing.T) {
	const topic = "arn:aws:sns:eu-west-1:123456789012:broker"
	now := time.Now().UTC().Truncate(time.Millisecond)
	req := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: "website",
		Params: map[string]string{"version": "1.4.2"}, RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute),
		Requester: &protocol.Requester{CI: "local"}}
	creds := credentials.StaticCredentialsProvider{Value: aws.Credentials{AccessKeyID: "AKIAEXAMPLEEXAMPLE00", SecretAccessKey: "s"}}
	if err := (RequestSigner{Credentials: creds, Topic: topic}).Sign(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Partition: "aws", Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	p, exp, err := RequestProof(req, topic)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := v.Check(p, exp); err != nil || target != "https://sts.eu-west-1.amazonaws.com/" {
		t.Fatalf("check: %q %v", target, err)
	}
	other := *req
	other.Params = map[string]string{"version": "1.4.3"}
	if p, exp, _ := RequestProof(&other, topic); func() error { _, err := v.Check(p, exp); return err }() == nil {
		t.Error("the proof passed for another request")
	}
	if p, exp, _ := RequestProof(req, "arn:aws:sns:eu-west-1:123456789012:other"); func() error { _, err := v.Check(p, exp); return err }() == nil {
		t.Error("the proof passed for another topic")
	}
	if _, _, err := RequestProof(&protocol.Request{}, topic); err == nil {
		t.Error("a request without proof decoded one")
	}
}

// MayRun is the one rule the dispatcher, deploy-trigger's view and local
// mode share: allowed_principals when a job has them (trust alone is not
// enough, and they need no trust), otherwise trust.
func TestMayRunAndTrustedBy(t *testing.T) {
	release, err := PrincipalFromARN("arn:aws:sts::111122223333:assumed-role/deployer/release-7")
	if err != nil {
		t.Fatal(err)
	}
	jenkins, err := PrincipalFromARN("arn:aws:sts::111122223333:assumed-role/deployer/jenkins-7")
	if err != nil {
		t.Fatal(err)
	}
	trusted := []string{"arn:aws:iam::111122223333:role/deployer"}
	extra := []string{"arn:aws:iam::444455556666:role/other"}
	if !TrustedBy(release, nil, trusted) || TrustedBy(release, extra) || TrustedBy(release) {
		t.Fatal("TrustedBy does not look through every list, or matches what no list names")
	}
	if !TrustedBy(release, []string{"111122223333"}) {
		t.Fatal("an account id entry does not trust its principals")
	}
	onlyRelease := []string{"arn:aws:sts::111122223333:assumed-role/deployer/release-*"}
	for _, c := range []struct {
		p       Principal
		allowed []string
		trusted bool
		want    bool
	}{
		{release, nil, true, true},
		{release, nil, false, false},
		{release, onlyRelease, false, true},               // allowed_principals need no trust
		{jenkins, onlyRelease, true, false},               // and trust is not enough
		{jenkins, []string{"not a pattern"}, true, false}, // an invalid pattern never matches
	} {
		if got := MayRun(c.p, c.allowed, c.trusted); got != c.want {
			t.Errorf("MayRun(%s, %v, trusted %v) = %v, want %v", c.p.ARN, c.allowed, c.trusted, got, c.want)
		}
	}
}
