package runner

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The job's credentials endpoint answers the job's SDK only: with the run's
// token, a request naming a web page's origin (Origin) or reaching the port
// under another name (DNS rebinding: the page's host as the Host) gets no
// credentials; 127.0.0.1:PORT and localhost:PORT do.
func TestCredentialsEndpointRefusesWebPagesAndOtherHosts(t *testing.T) {
	p := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret", SessionToken: "token"}, nil
	})
	cs, err := startCredsServer(p, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	addr := strings.TrimSuffix(strings.TrimPrefix(cs.url, "http://"), "/credentials")
	_, port, _ := strings.Cut(addr, ":")
	for _, c := range []struct {
		name, host, origin string
		want               int
	}{
		{"the SDK", "", "", http.StatusOK},
		{"localhost", "localhost:" + port, "", http.StatusOK},
		{"a web page", "", "https://evil.example", http.StatusForbidden},
		{"an empty Origin", "", " ", http.StatusForbidden},
		{"a rebound name", "evil.example:" + port, "", http.StatusMisdirectedRequest},
		{"another port", "127.0.0.1:1", "", http.StatusMisdirectedRequest},
	} {
		req, _ := http.NewRequest(http.MethodGet, cs.url, nil)
		req.Header.Set("Authorization", cs.token)
		if c.host != "" {
			req.Host = c.host
		}
		if c.origin != "" {
			req.Header.Set("Origin", strings.TrimSpace(c.origin))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}
