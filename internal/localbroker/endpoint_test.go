package localbroker

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// Issue 24 (low): a web page in the user's browser could drive local mode,
// because the local endpoint passed the emulator's permissive CORS answers
// through. Shown against the real emulator: a request carrying Origin
// (every cross-origin fetch and preflight does) is refused before it
// reaches the emulator, and no answer carries Access-Control-* headers.
func TestLocalEndpointRefusesBrowsers(t *testing.T) {
	srv, _ := mototest.Start(t)
	shim, err := startAccountShim(srv.URL, "123456789012", testKeyring())
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	send := func(method, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, shim.URL+"/", strings.NewReader("Action=ListTopics&Version=2010-03-31"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		signTest(t, req, "sns", "Action=ListTopics&Version=2010-03-31")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	corsHeaders := func(resp *http.Response) []string {
		var out []string
		for k := range resp.Header {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				out = append(out, k)
			}
		}
		return out
	}
	refused, cors := 0, 0
	for _, c := range []struct{ method, origin string }{
		{http.MethodPost, "https://attacker.example"},
		{http.MethodOptions, "https://attacker.example"},
		{http.MethodPost, "null"},
	} {
		resp := send(c.method, c.origin)
		if resp.StatusCode == http.StatusForbidden {
			refused++
		}
		cors += len(corsHeaders(resp))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with Origin %s: HTTP %d, want 403", c.method, c.origin, resp.StatusCode)
		}
		if h := corsHeaders(resp); len(h) > 0 {
			t.Errorf("%s with Origin %s: answer carries %v", c.method, c.origin, h)
		}
	}
	// A local client (no Origin) is served, without CORS headers.
	resp := send(http.MethodPost, "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("local client: HTTP %d, want 200", resp.StatusCode)
	}
	if h := corsHeaders(resp); len(h) > 0 {
		t.Errorf("local client: answer carries %v", h)
	}
	cors += len(corsHeaders(resp))
	t.Logf("RESULT scenario=local_endpoint_browsers refused=%d/3 access_control_headers=%d local_client_status=%d", refused, cors, resp.StatusCode)
}
