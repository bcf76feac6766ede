package brokerview

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
)

func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var testLocations = Locations{LedgerTable: "view-test-ledger", RunLogGroup: "/deploy-broker/view-test/runs",
	ReaderRoleARN: "arn:aws:iam::123456789012:role/view-test-reader", ExtraTrusted: []string{"arn:aws:iam::123456789012:role/github-trigger"}}

func testView(t testing.TB) *View {
	t.Helper()
	b, err := Encode(Build(testConfig(t), testLocations))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Decode(b)
	if err != nil {
		t.Fatalf("decoding the view Build made: %v\n%s", err, b)
	}
	return v
}

// The view carries what deploy-trigger needs and nothing a trusted
// principal may not see: no command, image, environment, policy, secret ARN
// or secret default. The test configuration marks each of those with a
// string that must not appear in the published JSON.
func TestViewHoldsNoSecrets(t *testing.T) {
	b, err := Encode(Build(testConfig(t), testLocations))
	if err != nil {
		t.Fatal(err)
	}
	for _, mark := range []string{"COMMAND-MARK", "RUNNER-IMAGE-MARK", "JOB-IMAGE-MARK", "ENVIRONMENT-VALUE-MARK", "ENV_MARK",
		"SECRET-ARN-MARK", "DB_PASSWORD", "SECRETDEFAULTMARK", "POLICY-MARK", "/usr/local/bin", "/bin/sh"} {
		if bytes.Contains(b, []byte(mark)) {
			t.Errorf("the view gives away %q:\n%s", mark, b)
		}
	}
	v := testView(t)
	tok := v.Jobs["rotate"].Params["token"]
	if !tok.Secret || !tok.HasDefault || tok.Default != nil {
		t.Errorf("secret parameter token = %+v, want secret, has_default, no default", tok)
	}
	if v.LedgerTable != testLocations.LedgerTable || v.RunLogGroup != testLocations.RunLogGroup || v.ReaderRoleARN != testLocations.ReaderRoleARN {
		t.Errorf("locations = %q %q %q", v.LedgerTable, v.RunLogGroup, v.ReaderRoleARN)
	}
	if !v.Trusted(mustPrincipal(t, "arn:aws:sts::123456789012:assumed-role/github-trigger/run-1")) {
		t.Error("the stack's trigger role (ExtraTrusted) is not trusted in the view")
	}
	if got := v.Jobs["migrate"]; got.Concurrency != 1 || got.ConcurrencyGroup != "production-db" || len(got.Approvers) != 1 || got.Timeout != "1h0m0s" {
		t.Errorf("migrate = %+v", got)
	}
}

func mustPrincipal(t testing.TB, arn string) identity.Principal {
	t.Helper()
	p, err := identity.PrincipalFromARN(arn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The view decides parameters exactly as the configuration does
// (config.Job.Resolve, the dispatcher's check), the leading-dash rule
// included, though it carries no command.
func TestViewResolvesAsTheCatalogue(t *testing.T) {
	cfg, v := testConfig(t), testView(t)
	cases := []map[string]string{
		{"version": "1.2.3"},
		{"version": "1.2"},
		{"version": "1.2.3", "colour": "red"},
		{"version": "1.2.3", "nope": "x"},
		{},
		{"version": "1.2.3", "prefix": "-a"},
		{"version": "1.2.3", "suffix": "-a"},
		{"version": "1.2.3", "prefix": "", "suffix": "-a"},
		{"version": "1.2.3", "prefix": "a", "suffix": "-a"},
	}
	for _, params := range cases {
		_, want := cfg.Jobs["website"].Resolve(params)
		_, got := v.Jobs["website"].Config().Resolve(params)
		if (want == nil) != (got == nil) || (want != nil && want.Error() != got.Error()) {
			t.Errorf("website %v: the view says %v, the catalogue %v", params, got, want)
		}
	}
	for _, params := range []map[string]string{{"steps": "3"}, {"steps": "0"}, {"steps": "3", "token": "-x"}, {"steps": "-1"}, {"steps": "3", "token": "x!"}} {
		_, want := cfg.Jobs["rotate"].Resolve(params)
		_, got := v.Jobs["rotate"].Config().Resolve(params)
		if (want == nil) != (got == nil) || (want != nil && want.Error() != got.Error()) {
			t.Errorf("rotate %v: the view says %v, the catalogue %v", params, got, want)
		}
	}
}

func TestCheckSaysWhatWouldHappen(t *testing.T) {
	v := testView(t)
	jenkins := mustPrincipal(t, "arn:aws:sts::111111111111:assumed-role/jenkins-deployer/build-7")
	release := mustPrincipal(t, "arn:aws:sts::111111111111:assumed-role/jenkins-deployer/release-7")
	stranger := mustPrincipal(t, "arn:aws:sts::999999999999:assumed-role/ci/run-1")

	if _, err := v.Check("website", map[string]string{"version": "bad"}, jenkins); !errors.As(err, new(*ParamError)) || !strings.Contains(err.Error(), `parameter "version" does not match the pattern`) {
		t.Errorf("bad version: %v", err)
	}
	if _, err := v.Check("nope", nil, jenkins); !errors.As(err, new(*UnknownJobError)) || !strings.Contains(err.Error(), "jobs: migrate, rotate, website") {
		t.Errorf("unknown job: %v", err)
	}
	if _, err := v.Check("website", map[string]string{"version": "1.2.3"}, stranger); !errors.As(err, new(*NotAllowedError)) || !strings.Contains(err.Error(), "not one of this broker's trusted principals") {
		t.Errorf("stranger: %v", err)
	}
	if _, err := v.Check("migrate", map[string]string{"steps": "1"}, jenkins); !errors.As(err, new(*NotAllowedError)) || !strings.Contains(err.Error(), "allowed_principals") {
		t.Errorf("jenkins build session on migrate: %v", err)
	}
	verdict, err := v.Check("migrate", map[string]string{"steps": "1"}, release)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(verdict.Notes, "\n")
	if !strings.Contains(notes, "needs approval by one of arn:aws:iam::555555555555:role/release-manager") || !strings.Contains(notes, "takes one of the 1 slot(s) of concurrency group production-db: when all are held it waits") {
		t.Errorf("notes:\n%s", notes)
	}
	if got := v.RunnableJobs(jenkins); strings.Join(got, ",") != "rotate,website" {
		t.Errorf("jenkins may run %v, want [website]", got)
	}
	if got := v.RunnableJobs(release); strings.Join(got, ",") != "migrate,rotate,website" {
		t.Errorf("a release session may run %v", got)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(Build(testConfig(t), testLocations))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for name, tc := range map[string]struct {
		doc  []byte
		want string
	}{
		"unknown field":    {edit(func(m map[string]any) { m["command"] = "x" }), `unknown field "command"`},
		"unknown in a job": {edit(func(m map[string]any) { m["jobs"].(map[string]any)["website"].(map[string]any)["image"] = "x" }), `unknown field "image"`},
		"version":          {edit(func(m map[string]any) { m["v"] = 2 }), "schema version 2"},
		"oversize":         {append(good, bytes.Repeat([]byte(" "), MaxBytes)...), "over the"},
		"trailing":         {append(append([]byte{}, good...), []byte(`{}`)...), "data after"},
		"no jobs":          {edit(func(m map[string]any) { m["jobs"] = map[string]any{} }), "names no jobs"},
		"secret default":   {edit(func(m map[string]any) { jobParam(m, "rotate", "token")["default"] = "x" }), "secret but its default"},
		"bad pattern":      {edit(func(m map[string]any) { jobParam(m, "website", "version")["pattern"] = "(" }), "does not compile"},
		"bad type":         {edit(func(m map[string]any) { jobParam(m, "website", "version")["type"] = "float" }), "unknown type"},
		"bad leading": {edit(func(m map[string]any) {
			m["jobs"].(map[string]any)["website"].(map[string]any)["leading"] = [][]string{{"zz"}}
		}), "not a parameter"},
		"bad principal":   {edit(func(m map[string]any) { m["viewers"] = []string{"*"} }), "not valid"},
		"bad reader role": {edit(func(m map[string]any) { m["reader_role_arn"] = "arn:aws:iam::1:user/x" }), "not a role ARN"},
		"not json":        {[]byte("jobs: {}"), "not valid"},
	} {
		if _, err := Decode(tc.doc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Decode = %v, want an error with %q", name, err, tc.want)
		}
	}
}

func jobParam(m map[string]any, job, param string) map[string]any {
	return m["jobs"].(map[string]any)[job].(map[string]any)["params"].(map[string]any)[param].(map[string]any)
}

// FuzzDecode: any input is refused with an error or decodes to a view that
// encodes and decodes again to the same view; it never panics.
func FuzzDecode(f *testing.F) {
	good, err := Encode(Build(testConfig(f), testLocations))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"broker":"b","ledger_table":"t","run_log_group":"g","trusted_principals":[],"jobs":{"a":{"timeout":"1s","leading":[["x"]]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(*v)
		if err != nil {
			t.Fatalf("a decoded view does not encode: %v", err)
		}
		v2, err := Decode(again)
		if err != nil {
			t.Fatalf("a decoded view, encoded, does not decode: %v", err)
		}
		a, _ := json.Marshal(v)
		c, _ := json.Marshal(v2)
		if !bytes.Equal(a, c) {
			t.Fatalf("round trip changed the view:\n%s\n%s", a, c)
		}
		for _, name := range v.JobNames() {
			_, _ = v.Jobs[name].Config().Resolve(map[string]string{"x": "-1"})
		}
	})
}
