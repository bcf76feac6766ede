package identity

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// PrincipalKind is the kind of identity STS reported.
type PrincipalKind string

// The principal kinds this package recognises. Anything else (root, a
// federated user) is refused by Verify: the catalogue cannot name it.
const (
	PrincipalUser        PrincipalKind = "user"
	PrincipalAssumedRole PrincipalKind = "assumed-role"
)

// Principal is the identity STS vouched for.
type Principal struct {
	// ARN, Account and UserID exactly as STS returned them.
	ARN     string
	Account string
	UserID  string

	Partition string
	Kind      PrincipalKind
	// RoleARN is arn:PARTITION:iam::ACCOUNT:role/NAME for an assumed role.
	// STS drops the role's path from assumed-role ARNs, so RoleARN never has
	// one; compare it to catalogue entries with MatchPrincipal, which
	// ignores the path (a role name is unique within an account whatever
	// its path).
	RoleARN     string
	RoleName    string
	SessionName string // chosen by the caller unless the trust policy pins it
	// UserARN is the IAM user's ARN (with its path) for PrincipalUser.
	UserARN  string
	UserName string
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	// IAM names: role/user names and session names.
	nameRE    = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	sessionRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	iamPathRE = regexp.MustCompile(`^/([\x21-\x7e]*/)?$`)
)

func parsePrincipal(arn, account, userID string) (Principal, error) {
	p := Principal{ARN: arn, Account: account, UserID: userID}
	if !accountRE.MatchString(account) {
		return p, fmt.Errorf("account %q", clip(account))
	}
	if userID == "" || len(userID) > 256 {
		return p, errors.New("missing user id")
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[3] != "" {
		return p, fmt.Errorf("ARN %q", clip(arn))
	}
	if _, ok := dnsSuffix[parts[1]]; !ok {
		return p, fmt.Errorf("ARN partition %q", clip(parts[1]))
	}
	if parts[4] != account {
		return p, fmt.Errorf("ARN account %q is not the reported account %q", clip(parts[4]), account)
	}
	p.Partition = parts[1]
	res := parts[5]
	switch {
	case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
		rs := strings.Split(strings.TrimPrefix(res, "assumed-role/"), "/")
		if len(rs) != 2 || !nameRE.MatchString(rs[0]) || !sessionRE.MatchString(rs[1]) {
			return p, fmt.Errorf("assumed-role ARN %q", clip(arn))
		}
		p.Kind, p.RoleName, p.SessionName = PrincipalAssumedRole, rs[0], rs[1]
		p.RoleARN = "arn:" + p.Partition + ":iam::" + account + ":role/" + rs[0]
	case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
		dir, name := splitPathName(strings.TrimPrefix(res, "user"))
		if !iamPathRE.MatchString(dir) || !nameRE.MatchString(name) {
			return p, fmt.Errorf("user ARN %q", clip(arn))
		}
		p.Kind, p.UserARN, p.UserName = PrincipalUser, arn, name
	default:
		return p, fmt.Errorf("principal %q is neither an IAM user nor an assumed role", clip(arn))
	}
	return p, nil
}

// splitPathName splits "/path/to/name" into "/path/to/" and "name".
func splitPathName(s string) (string, string) {
	i := strings.LastIndex(s, "/")
	return s[:i+1], s[i+1:]
}

// MatchPrincipal reports whether p is the identity a catalogue pattern
// names. Patterns always carry the partition and the 12-digit account; no
// wildcard is allowed anywhere but in a session name:
//
//   - arn:aws:iam::123456789012:role/NAME or role/PATH/NAME: any session of
//     that role. The path is ignored (STS does not report it); the name and
//     account must match exactly.
//   - arn:aws:sts::123456789012:assumed-role/NAME/SESSION-GLOB: sessions of
//     that role whose session name matches the glob (path.Match syntax).
//     Session names are chosen by whoever assumes the role, so this only
//     means something if the role's trust policy pins sts:RoleSessionName.
//   - arn:aws:iam::123456789012:user/[PATH/]NAME: that IAM user, full ARN
//     compared exactly (STS reports user paths).
//
// An invalid pattern is an error, never a match. Matching by role or user
// name alone is impossible by construction.
func MatchPrincipal(p Principal, pattern string) (bool, error) {
	pat, err := parsePattern(pattern)
	if err != nil {
		return false, err
	}
	if p.Partition != pat.partition || p.Account != pat.account {
		return false, nil
	}
	switch pat.kind {
	case PrincipalAssumedRole:
		if p.Kind != PrincipalAssumedRole || p.RoleName != pat.name {
			return false, nil
		}
		if pat.sessionGlob == "" {
			return true, nil
		}
		ok, _ := path.Match(pat.sessionGlob, p.SessionName) // glob validated in parsePattern
		return ok, nil
	case PrincipalUser:
		return p.Kind == PrincipalUser && p.UserARN == pattern, nil
	}
	return false, nil
}

// ValidatePattern reports whether pattern is a valid MatchPrincipal pattern;
// use it when loading the catalogue.
func ValidatePattern(pattern string) error {
	_, err := parsePattern(pattern)
	return err
}

type pattern struct {
	partition, account, name, sessionGlob string
	kind                                  PrincipalKind
}

func parsePattern(s string) (pattern, error) {
	var pat pattern
	bad := func(why string) (pattern, error) {
		return pattern{}, fmt.Errorf("identity: principal pattern %q: %s", clip(s), why)
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[3] != "" {
		return bad("not an ARN arn:PARTITION:SERVICE::ACCOUNT:RESOURCE")
	}
	if _, ok := dnsSuffix[parts[1]]; !ok {
		return bad("unknown partition")
	}
	if !accountRE.MatchString(parts[4]) {
		return bad("account must be 12 digits")
	}
	pat.partition, pat.account = parts[1], parts[4]
	res := parts[5]
	switch {
	case parts[2] == "iam" && strings.HasPrefix(res, "role/"):
		dir, name := splitPathName(strings.TrimPrefix(res, "role"))
		if !iamPathRE.MatchString(dir) || strings.ContainsAny(dir, "*?[") || !nameRE.MatchString(name) {
			return bad("role path or name")
		}
		pat.kind, pat.name = PrincipalAssumedRole, name
	case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
		rs := strings.Split(strings.TrimPrefix(res, "assumed-role/"), "/")
		if len(rs) != 2 || !nameRE.MatchString(rs[0]) {
			return bad("want assumed-role/ROLE/SESSION-GLOB")
		}
		if rs[1] == "" || len(rs[1]) > 128 {
			return bad("session glob")
		}
		if _, err := path.Match(rs[1], ""); err != nil {
			return bad("session glob: " + err.Error())
		}
		pat.kind, pat.name, pat.sessionGlob = PrincipalAssumedRole, rs[0], rs[1]
	case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
		dir, name := splitPathName(strings.TrimPrefix(res, "user"))
		if !iamPathRE.MatchString(dir) || strings.ContainsAny(dir, "*?[") || !nameRE.MatchString(name) {
			return bad("user path or name")
		}
		pat.kind, pat.name = PrincipalUser, name
	default:
		return bad("want an IAM role, an assumed-role session pattern or an IAM user")
	}
	return pat, nil
}
