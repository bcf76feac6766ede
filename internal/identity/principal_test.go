package identity

import (
	"strings"
	"testing"
)

func mustPrincipal(t *testing.T, arn string) Principal {
	t.Helper()
	p, err := parsePrincipal(arn, testAccount, "AROAEXAMPLE:s")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePrincipal(t *testing.T) {
	p := mustPrincipal(t, "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7")
	if p.Kind != PrincipalAssumedRole || p.RoleARN != "arn:aws:iam::123456789012:role/deployer" || p.RoleName != "deployer" || p.SessionName != "ci-run-7" || p.Partition != "aws" {
		t.Fatalf("%+v", p)
	}
	u := mustPrincipal(t, "arn:aws:iam::123456789012:user/ci/alice")
	if u.Kind != PrincipalUser || u.UserARN != u.ARN || u.UserName != "alice" {
		t.Fatalf("%+v", u)
	}
	cn, err := parsePrincipal("arn:aws-cn:sts::123456789012:assumed-role/r/s1", testAccount, "x")
	if err != nil || cn.RoleARN != "arn:aws-cn:iam::123456789012:role/r" {
		t.Fatalf("%+v %v", cn, err)
	}
	for _, bad := range []string{
		"", "arn:aws:iam::123456789012:root", "arn:aws:sts::123456789012:federated-user/bob",
		"arn:aws:iam::123456789012:role/deployer", // a role ARN is never a caller
		"arn:aws:sts::123456789012:assumed-role/deployer", "arn:aws:sts::123456789012:assumed-role/deployer/s/x",
		"arn:aws:sts::999999999999:assumed-role/deployer/s1", "arn:aws:sts:us-east-1:123456789012:assumed-role/deployer/s1",
		"arn:aws-xx:sts::123456789012:assumed-role/deployer/s1", "arn:aws:iam::123456789012:user/", "arn:aws:iam::123456789012:user/a b",
	} {
		if _, err := parsePrincipal(bad, testAccount, "x"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := parsePrincipal("arn:aws:iam::123456789012:user/a", "12345", "x"); err == nil {
		t.Error("accepted a short account")
	}
	if _, err := parsePrincipal("arn:aws:iam::123456789012:user/a", testAccount, ""); err == nil {
		t.Error("accepted an empty user id")
	}
}

// MatchPrincipal never matches by name alone: account and partition are
// always compared, wildcards only in session names, role paths ignored.
func TestMatchPrincipal(t *testing.T) {
	role := mustPrincipal(t, "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7")
	user := mustPrincipal(t, "arn:aws:iam::123456789012:user/ci/alice")
	cases := []struct {
		p       Principal
		pattern string
		want    bool
	}{
		{role, "arn:aws:iam::123456789012:role/deployer", true},
		{role, "arn:aws:iam::123456789012:role/teams/web/deployer", true}, // path ignored: STS drops it
		{role, "arn:aws:iam::210987654321:role/deployer", false},          // same name, other account
		{role, "arn:aws-cn:iam::123456789012:role/deployer", false},       // other partition
		{role, "arn:aws:iam::123456789012:role/deployer2", false},
		{role, "arn:aws:iam::123456789012:role/Deployer", false}, // exact case
		{role, "arn:aws:sts::123456789012:assumed-role/deployer/ci-*", true},
		{role, "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7", true},
		{role, "arn:aws:sts::123456789012:assumed-role/deployer/other-*", false},
		{role, "arn:aws:sts::123456789012:assumed-role/other/ci-*", false},
		{role, "arn:aws:iam::123456789012:user/ci/alice", false},
		{user, "arn:aws:iam::123456789012:user/ci/alice", true},
		{user, "arn:aws:iam::123456789012:user/alice", false}, // user paths are reported: compared exactly
		{user, "arn:aws:iam::123456789012:role/alice", false},
		{user, "arn:aws:iam::210987654321:user/ci/alice", false},
	}
	for _, c := range cases {
		got, err := MatchPrincipal(c.p, c.pattern)
		if err != nil || got != c.want {
			t.Errorf("%s vs %s: %v %v, want %v", c.p.ARN, c.pattern, got, err, c.want)
		}
	}
	for _, bad := range []string{
		"", "deployer", "role/deployer", "*", "arn:aws:iam::*:role/deployer", "arn:aws:iam::123456789012:role/*",
		"arn:aws:iam::123456789012:role/dep*", "arn:aws:iam::123456789012:role/*/deployer",
		"arn:aws:iam:::role/deployer", "arn:aws:iam::12345678901:role/deployer", "arn:aws:iam:us-east-1:123456789012:role/deployer",
		"arn:aws:sts::123456789012:assumed-role/dep*/s", "arn:aws:sts::123456789012:assumed-role/deployer",
		"arn:aws:sts::123456789012:assumed-role/deployer/[", "arn:aws:sts::123456789012:assumed-role/deployer/a/b",
		"arn:aws:iam::123456789012:user/*", "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:group/g",
		"arn:*:iam::123456789012:role/deployer",
	} {
		if err := ValidatePattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
		if ok, err := MatchPrincipal(role, bad); ok || err == nil {
			t.Errorf("pattern %q matched or gave no error", bad)
		}
	}
	if ok, err := MatchPrincipal(Principal{}, "arn:aws:iam::123456789012:role/deployer"); ok || err != nil {
		t.Error("zero principal matched")
	}
	if !strings.Contains(func() string { _, err := MatchPrincipal(role, "*"); return err.Error() }(), "pattern") {
		t.Error("error text")
	}
}
