package trigger

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

// The default silence limit outlasts the runner's retries of a failing
// send, so throttling the runner rides out never ends the run with 243; an
// explicit --missed-heartbeats is taken as given.
func TestHeartbeatLimit(t *testing.T) {
	if minSilence < runner.DefaultSendTimeout+runnerCallTimeout+receiveVisibility {
		t.Fatalf("minSilence %s does not outlast the runner's send timeout %s + one call %s + a redelivery %s",
			minSilence, runner.DefaultSendTimeout, runnerCallTimeout, receiveVisibility)
	}
	if runnerSendTimeout != runner.DefaultSendTimeout {
		t.Errorf("runnerSendTimeout %s, but the runner's default is %s", runnerSendTimeout, runner.DefaultSendTimeout)
	}
	for _, c := range []struct {
		missed, hb int
		want       time.Duration
	}{
		{0, 0, 3 * time.Minute},   // no started record yet: 10 s interval
		{0, 10, 3 * time.Minute},  // 4 × 10 s is below the floor
		{0, 60, 4 * time.Minute},  // 4 × 60 s is above it
		{2, 1, 2 * time.Second},   // explicit: as given
		{4, 10, 40 * time.Second}, // explicit: as given, even below the floor
	} {
		w := &watch{cfg: &Config{CLI: CLI{MissedHeartbeats: c.missed}}}
		if c.hb > 0 {
			w.started = &protocol.Started{HeartbeatSeconds: c.hb}
		}
		if got := w.heartbeatLimit(); got != c.want {
			t.Errorf("missed %d, heartbeat %ds: limit %s, want %s", c.missed, c.hb, got, c.want)
		}
	}
	if err := (&CLI{Job: "x", StartTimeout: 1, CancelGrace: 1, RequestTTL: time.Minute, MissedHeartbeats: 1}).validate(); err == nil {
		t.Error("--missed-heartbeats 1 accepted")
	}
}

// A line piece whose base64 cannot be decoded is skipped with a warning
// naming the record; the rest of the record prints and the run goes on.
func TestBadBase64LineIsSkipped(t *testing.T) {
	var stdout, stderr bytes.Buffer
	w := &watch{set: newApp(func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr, nil).watchSettings(),
		cfg: &Config{}, out: newPlainPrinter(&stdout, &stderr, false, false), openLine: map[protocol.Stream]bool{}}
	bad := protocol.Line{Stream: protocol.Stdout, B64: "!!not base64"}
	badEnd := bad
	r := output(7, out("one"), bad, protocol.Line{Stream: protocol.Stdout, Text: "two ", Cont: true}, badEnd, out("three"),
		protocol.Line{Stream: protocol.Stdout, B64: "aGk="})
	if err := w.onRecord(context.Background(), r); err != nil {
		t.Fatalf("onRecord: %v", err)
	}
	// "two " was open when its end could not be decoded: the line still ends.
	if got, want := stdout.String(), "one\ntwo \nthree\nhi\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if n := strings.Count(stderr.String(), "warning: runner record 7: skipped line piece"); n != 2 {
		t.Errorf("%d warnings:\n%s", n, stderr.String())
	}
	if len(r.Output.Lines) != 6 {
		t.Error("the record passed in was changed")
	}
}

// URL-valued requester fields lose their userinfo (anywhere in a field) and,
// when the field is a URL, its query and fragment; other fields are kept.
func TestRequesterStripsURLCredentials(t *testing.T) {
	j := requesterFromEnv(envOf("JENKINS_URL=https://ci/",
		"BUILD_URL=https://admin:s3cr3t@ci.example/job/web/7/?token=abc#frag",
		"GIT_URL=https://x-access-token:ghs_abcdef@github.com/acme/app.git",
		"JOB_NAME=deploy/web", "BUILD_NUMBER=7", "GIT_BRANCH=origin/main", "BUILD_USER_ID=alice"), "agent")
	if j.RunURL != "https://ci.example/job/web/7/" || j.Repository != "https://github.com/acme/app.git" {
		t.Errorf("jenkins = %+v", j)
	}
	gh := requesterFromEnv(envOf("GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/app", "GITHUB_RUN_ID=42",
		"GITHUB_SERVER_URL=https://bot:pat@ghe.example"), "runner")
	if gh.RunURL != "https://ghe.example/acme/app/actions/runs/42" {
		t.Errorf("github run url %q", gh.RunURL)
	}
	for in, want := range map[string]string{
		"git@github.com:acme/app.git":                    "git@github.com:acme/app.git", // scp-like: user "git", no secret
		"ssh://git:pw@host/repo":                         "ssh://host/repo",
		"https://u:p@ss@host/p":                          "https://host/p", // unescaped @ in the password
		"mirror https://u:tok@a/x and https://b/y":       "mirror https://a/x and https://b/y",
		"https://host/job/1/":                            "https://host/job/1/",
		"https://host/x?access_token=abc":                "https://host/x",
		"refs/heads/main":                                "refs/heads/main",
		"alice@example.com":                              "alice@example.com",
		"https://user@host:8080/path%20with%20space?q=1": "https://host:8080/path%20with%20space",
	} {
		if got := stripURLSecrets(in); got != want {
			t.Errorf("stripURLSecrets(%q) = %q, want %q", in, got, want)
		}
	}
	for _, s := range []string{"s3cr3t", "ghs_abcdef", "token=abc", "pat@"} {
		if strings.Contains(j.RunURL+j.Repository+gh.RunURL, s) {
			t.Errorf("%q survived", s)
		}
	}
}

// A CI variable holding characters the broker refuses in requester fields
// (an emoji joined with U+200D, a bidi mark) does not stop the run: they
// become spaces and the request validates.
func TestRequesterFormatCharactersBecomeSpaces(t *testing.T) {
	r := requesterFromEnv(envOf("GITHUB_ACTIONS=true", "GITHUB_REPOSITORY=acme/app", "GITHUB_WORKFLOW=Deploy 👩\u200d💻 \u202eevil",
		"GITHUB_ACTOR=alice\u0085"), "runner")
	for _, f := range []string{r.Pipeline, r.Actor} {
		for _, c := range f {
			if protocol.IsControl(c) {
				t.Errorf("field %q keeps U+%04X", f, c)
			}
		}
	}
	req := newRequest(protocol.KindRun, protocol.NewRunID(time.Now()), time.Now(), 5*time.Minute)
	req.Job, req.Requester = "website", r
	if err := req.Validate(); err != nil {
		t.Errorf("the request does not validate: %v", err)
	}
}
