package identity

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Fixed test values. No test ever contacts a real AWS endpoint: every
// verifier below has an Endpoint override on 127.0.0.1.
const (
	testRegion   = "us-east-1"
	testAudience = "arn:aws:sns:us-east-1:111122223333:deploy-broker"
	testAccount  = "123456789012"
)

var testNow = time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)

func testDigest(runID string) [32]byte {
	return Digest([]Field{{"v", "1"}, {"kind", "run"}, {"run_id", runID}, {"job", "deploy-web"}})
}

func staticCreds(token string) credentials.StaticCredentialsProvider {
	return credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token)
}

// fakeSTS is a loopback HTTP server that counts requests and answers with
// a fixed status and body. It lets unit tests prove that a rejected proof
// never reached "STS".
type fakeSTS struct {
	*httptest.Server
	hits   atomic.Int32
	status int
	body   string
	last   *http.Request
	header http.Header
}

func newFakeSTS(t *testing.T) *fakeSTS {
	f := &fakeSTS{status: 200, body: gciXML("arn:aws:iam::" + testAccount + ":user/ci/alice")}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.last = r
		f.header = r.Header.Clone()
		w.WriteHeader(f.status)
		fmt.Fprint(w, f.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func gciXML(arn string) string {
	return `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>` + arn + `</Arn>
    <UserId>AIDAEXAMPLEUSERID</UserId>
    <Account>` + testAccount + `</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>
`
}

func signTest(t testing.TB, endpoint string, digest [32]byte, at time.Time) *Proof {
	t.Helper()
	p, err := Sign(context.Background(), SignInput{
		Credentials: staticCreds("FwoGZXIvYXdzEXAMPLETOKEN"),
		Region:      testRegion, Partition: "aws",
		Audience: testAudience, Digest: digest,
		Endpoint: endpoint, Now: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testVerifier(t testing.TB, endpoint string, now time.Time, tr http.RoundTripper) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{
		Partition: "aws", Region: testRegion, Endpoint: endpoint,
		Now: func() time.Time { return now }, Transport: tr, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func setHeader(p *Proof, name, value string) {
	for i := range p.Headers {
		if strings.EqualFold(p.Headers[i].Name, name) {
			p.Headers[i].Value = value
			return
		}
	}
	p.Headers = append(p.Headers, Header{Name: name, Value: value})
}

// countingTransport counts the requests that leave the verifier.
type countingTransport struct {
	n  atomic.Int32
	rt http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}
