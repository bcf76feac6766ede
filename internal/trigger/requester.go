package trigger

import (
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// requesterFromEnv fills in who is asking, from the CI system's own
// environment variables: GitHub Actions, then Jenkins, then the local user.
// It is audit information for the run ledger, never authorization.
func requesterFromEnv(getenv func(string) string, hostname string) *protocol.Requester {
	clean := func(s string) string {
		s = stripURLSecrets(s)
		// The broker refuses control and invisible format characters in
		// requester fields (protocol.IsControl); a CI variable holding one
		// (an emoji joined with U+200D in a workflow name) must not stop
		// the run, so they become spaces.
		s = strings.Map(func(r rune) rune {
			if protocol.IsControl(r) {
				return ' '
			}
			return r
		}, s)
		if len(s) > protocol.MaxRequesterField {
			s = s[:protocol.MaxRequesterField]
			for !utf8.ValidString(s) {
				s = s[:len(s)-1]
			}
		}
		return s
	}
	var r protocol.Requester
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		r.CI = "github-actions"
		r.Repository = getenv("GITHUB_REPOSITORY")
		r.Ref = getenv("GITHUB_REF")
		r.SHA = getenv("GITHUB_SHA")
		r.Actor = getenv("GITHUB_ACTOR")
		r.Pipeline = getenv("GITHUB_WORKFLOW")
		if id := getenv("GITHUB_RUN_ID"); id != "" {
			server := getenv("GITHUB_SERVER_URL")
			if server == "" {
				server = "https://github.com"
			}
			if r.Repository != "" {
				r.RunURL = server + "/" + r.Repository + "/actions/runs/" + id
			}
			r.Build = id
			if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" && a != "1" {
				r.Build += "." + a
			}
		}
	case getenv("JENKINS_URL") != "" || getenv("BUILD_URL") != "" && getenv("JOB_NAME") != "":
		r.CI = "jenkins"
		r.RunURL = getenv("BUILD_URL")
		r.Pipeline = getenv("JOB_NAME")
		r.Build = getenv("BUILD_NUMBER")
		r.SHA = getenv("GIT_COMMIT")
		r.Ref = getenv("GIT_BRANCH")
		if r.Ref == "" {
			r.Ref = getenv("BRANCH_NAME")
		}
		r.Repository = getenv("GIT_URL")
		r.Actor = getenv("BUILD_USER_ID")
		if r.Actor == "" {
			r.Actor = getenv("CHANGE_AUTHOR")
		}
	default:
		r.CI = "local"
		r.Actor = getenv("USER")
		if r.Actor == "" {
			r.Actor = getenv("USERNAME")
		}
	}
	r.Host = hostname
	for _, p := range []*string{&r.CI, &r.Repository, &r.Ref, &r.SHA, &r.Actor, &r.RunURL, &r.Pipeline, &r.Build, &r.Host} {
		*p = clean(*p)
	}
	return &r
}

// urlUserinfoRE matches the scheme and userinfo of a URL anywhere in a
// string: "https://user:token@" (up to the last '@' before the path).
var urlUserinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@`)

// stripURLSecrets removes what may be a credential from URL-valued requester
// fields before they reach the request, and so the broker's run ledger, audit
// log, queue tags and StopTask reason: the userinfo of every URL in s
// (Jenkins' GIT_URL and BUILD_URL may be https://user:token@host/…), and,
// when s is a URL, its query and fragment (?access_token=…), which a build
// or repository link never needs.
func stripURLSecrets(s string) string {
	s = urlUserinfoRE.ReplaceAllString(s, "$1")
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "") {
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
		s = u.String()
	} else if i := strings.IndexAny(s, "?#"); i >= 0 && strings.Contains(s[:i], "://") && !strings.ContainsAny(s[:i], " \t") {
		s = s[:i] // a URL that does not parse: drop its query all the same
	}
	return s
}

// sessionName names an assumed-role session after the CI run, so CloudTrail
// in the CI account says which build published: "gha-org-app-123456",
// "jenkins-deploy-web-42", "local-alice". At most 64 characters of
// [\w+=,.@-].
func sessionName(r *protocol.Requester) string {
	var s string
	switch r.CI {
	case "github-actions":
		s = "gha-" + r.Repository + "-" + r.Build
	case "jenkins":
		s = "jenkins-" + r.Pipeline + "-" + r.Build
	default:
		s = "deploy-trigger-" + r.Actor
	}
	s = strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("+=,.@-_", c):
			return c
		}
		return '-'
	}, strings.TrimRight(s, "-"))
	if len(s) < 2 {
		s = "deploy-trigger"
	}
	if len(s) > 64 {
		s = s[len(s)-64:]
	}
	return s
}
