package runner_test

// Redaction measured: how many generated AWS credentials escape the
// redactor (misses), and how many lines of realistic deploy output it
// changes although they hold no secret (false positives). The figures are
// in docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench 'Redaction' -benchtime 200000x ./internal/runner/
//
// The tests below pin them on fixed seeds, independent of timing.

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/runner"
	"github.com/deploy-broker/deploy-broker/internal/testkit/deploylog"
)

func redactLine(r *runner.Redactor, s string) string {
	return string(runner.Apply(nil, []byte(s), r.Find([]byte(s), nil)))
}

// Credential generators, from a source of random bytes: real AWS
// credentials are random in these alphabets and lengths.
type credential struct {
	kind string
	// env and json are the credential's labels as the AWS CLI prints them
	// in `aws configure export-credentials --format env` and in
	// `aws sts assume-role` output.
	env, json string
	value     func(rnd io.Reader) string
}

func randBytes(rnd io.Reader, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(rnd, b); err != nil {
		panic(err)
	}
	return b
}

var credentials = []credential{
	// Access key ids: AKIA (long-term) or ASIA (temporary) and 16
	// characters of A-Z and 2-7.
	{"access key id", "AWS_ACCESS_KEY_ID", "AccessKeyId", func(rnd io.Reader) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
		b := randBytes(rnd, 17)
		prefix := "AKIA"
		if b[16]&1 == 1 {
			prefix = "ASIA"
		}
		var s strings.Builder
		s.WriteString(prefix)
		for _, c := range b[:16] {
			s.WriteByte(alphabet[int(c)%len(alphabet)])
		}
		return s.String()
	}},
	// Secret access keys: 30 random bytes in standard base64, 40 characters.
	{"secret access key", "AWS_SECRET_ACCESS_KEY", "SecretAccessKey", func(rnd io.Reader) string {
		return base64.StdEncoding.EncodeToString(randBytes(rnd, 30))
	}},
	// Session tokens: base64 of a few hundred bytes that start the way STS
	// tokens do ("!\n\torigin_ec…", base64 "IQoJb3JpZ2luX2Vj…").
	{"session token", "AWS_SESSION_TOKEN", "SessionToken", func(rnd io.Reader) string {
		n := 400 + int(randBytes(rnd, 1)[0])*3
		return base64.StdEncoding.EncodeToString(append([]byte("!\n\torigin_ec"), randBytes(rnd, n)...))
	}},
}

// contexts are how a job prints a credential: bare between words (only the
// shape can give it away) and labelled the ways the AWS CLI and SDKs print
// them.
var contexts = []struct {
	name  string
	print func(c credential, v string) string
}{
	{"bare", func(_ credential, v string) string { return "creds " + v + " ok" }},
	{"env", func(c credential, v string) string { return "export " + c.env + "=" + v }},
	{"json", func(c credential, v string) string { return `    "` + c.json + `": "` + v + `",` }},
}

// missRate redacts n credentials of each kind in each context and returns
// the fraction still visible per kind and context.
func missRates(rnd io.Reader, n int) map[string]float64 {
	r := runner.NewRedactor(nil)
	out := map[string]float64{}
	for _, c := range credentials {
		for _, ctx := range contexts {
			miss := 0
			for i := 0; i < n; i++ {
				v := c.value(rnd)
				if strings.Contains(redactLine(r, ctx.print(c, v)), v) {
					miss++
				}
			}
			out[c.kind+"/"+ctx.name] = float64(miss) / float64(n)
		}
	}
	return out
}

// realisticLines are deploy-output lines that hold no secret but look
// like one to a shape heuristic: git SHAs, digests, CloudFormation logical
// ids, base64 checksums, CamelCase identifiers, paths.
var realisticLines = []string{
	"HEAD is now at 0123456789abcdef0123456789abcdef01234567 release: 4.2.0",
	"commit 0123456789ABCDEF0123456789abcdef01234567",
	"digest: sha256:3f4b5c6d7e8f90123456789abcdef0123456789abcdef0123456789abcdef01 size: 1573",
	"ApiGatewayDeploymentStageProdLogGroup4A1B2C3D | CREATE_COMPLETE | AWS::Logs::LogGroup",
	"deploy-broker |  3/12 | 10:02:11 AM | UPDATE_COMPLETE | AWS::IAM::Role | CatalogueJobwebsiteTaskRoleE1F2A3B4",
	"integrity sha512-Q2hlY2tzdW1PZk5vdGhpbmdJbXBvcnRhbnRBdEFsbEhlcmU0Mg== for lodash@4.17.21",
	"Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg== ETag \"d41d8cd98f00b204e9800998ecf8427e\"",
	"src/main/java/com/example/deploy/RunnerApplication.java compiled",
	"  ~ module.network.aws_route_table_association.private[\"eu-west-1a\"] will be updated in-place",
	"I1122 10:00:01.123456       1 controller.go:118] Reconciling ConfigMap kube-system/aws-auth",
	"Successfully tagged 123456789012.dkr.ecr.eu-west-1.amazonaws.com/deploy-runner:1.4.2",
	"ConfigurationPropertiesBindingPostProcessor initialised in 14 ms",
	"x-amz-request-id: 4442587FB7D0A2F9 x-amz-id-2: vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYBDXOo6QBU0Wo=",
	"cd /home/runner/work/DeployBroker/app/src",
	"wrote /tmp/terraform/providers/registry/Aws5/lock",
	"Outputs: deploy-broker.ClusterArn = arn:aws:ecs:eu-west-1:123456789012:cluster/deploy-broker",
}

// falsePositives redacts lines 0..n-1 of the deploy-log generator and the
// realistic lines, and returns how many lines changed out of how many.
func falsePositives(n int) (changed, total int, examples []string) {
	r := runner.NewRedactor(nil)
	var buf []byte
	check := func(line string) {
		total++
		if got := redactLine(r, line); got != line {
			changed++
			if len(examples) < 5 {
				examples = append(examples, got)
			}
		}
	}
	for i := 0; i < n; i++ {
		buf = deploylog.Line(buf[:0], i)
		check(string(buf))
	}
	for _, l := range realisticLines {
		check(l)
	}
	return changed, total, examples
}

// seeded is a deterministic source of random bytes.
type seeded struct{ r *mrand.ChaCha8 }

func (s seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

func newSeeded(seed byte) io.Reader {
	var k [32]byte
	k[0] = seed
	return seeded{mrand.NewChaCha8(k)}
}

// On a fixed seed of 10,000 credentials of each kind in each context,
// labelled credentials are never missed and bare ones at most 1 in 1,000
// (secret access keys: random 40 characters sometimes look like
// something else; the benchmark measures the rate).
func TestRedactorMissRateOnGeneratedCredentials(t *testing.T) {
	rates := missRates(newSeeded(1), 10_000)
	for k, rate := range rates {
		t.Logf("%-28s miss rate %.4f%%", k, 100*rate)
		limit := 0.0
		if k == "secret access key/bare" {
			limit = 0.001
		}
		if rate > limit {
			t.Errorf("%s: %.4f%% of generated credentials escape redaction, want at most %.2f%%", k, 100*rate, 100*limit)
		}
	}
}

// No line of the deploy-log generator (100,000 lines) nor of the realistic
// lines above is changed: the redactor does not garble ordinary output.
func TestRedactorFalsePositivesOnDeployOutput(t *testing.T) {
	changed, total, examples := falsePositives(100_000)
	t.Logf("%d of %d lines changed", changed, total)
	if changed != 0 {
		t.Errorf("%d of %d secret-free lines changed, e.g. %q", changed, total, examples)
	}
}

// BenchmarkRedactionMissRate measures the miss rate on credentials from
// crypto/rand: b.N credentials of each kind, in each context.
func BenchmarkRedactionMissRate(b *testing.B) {
	n := 0
	misses := map[string]int{}
	r := runner.NewRedactor(nil)
	for b.Loop() {
		for _, c := range credentials {
			v := c.value(rand.Reader)
			for _, ctx := range contexts {
				if strings.Contains(redactLine(r, ctx.print(c, v)), v) {
					misses[c.kind+"/"+ctx.name]++
				}
			}
		}
		n++
	}
	for _, c := range credentials {
		for _, ctx := range contexts {
			k := c.kind + "/" + ctx.name
			b.ReportMetric(100*float64(misses[k])/float64(n), "%miss:"+strings.ReplaceAll(k, " ", "_"))
		}
	}
}

// BenchmarkRedactionFalsePositives measures the share of secret-free deploy
// output lines the redactor changes: b.N lines of the deploy-log generator.
func BenchmarkRedactionFalsePositives(b *testing.B) {
	r := runner.NewRedactor(nil)
	var buf []byte
	changed, i := 0, 0
	for b.Loop() {
		buf = deploylog.Line(buf[:0], i)
		if got := runner.Apply(nil, buf, r.Find(buf, nil)); string(got) != string(buf) {
			changed++
		}
		i++
	}
	b.ReportMetric(100*float64(changed)/float64(i), "%lines_changed")
}

// A copy of the bench's deploy-log generator (bench/deploylog.go; the bench
// is a main package and cannot be imported): the same lines for the same i.
