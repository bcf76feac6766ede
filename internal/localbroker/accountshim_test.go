package localbroker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Review finding 12: the shim sets the broker's account on every request but
// STS's, never passes on a client's x-moto-account-id, and answers only
// requests addressed to its 127.0.0.1 URL (no DNS rebinding).
func TestAccountShimHeaderAndHost(t *testing.T) {
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("x-moto-account-id"))
	}))
	defer up.Close()
	shim, err := startAccountShim(up.URL, "000000000000", testKeyring())
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	send := func(service, host, account string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, shim.URL+"/", strings.NewReader("Action=GetCallerIdentity"))
		if account != "" {
			req.Header.Set("x-moto-account-id", account)
		}
		if host != "" {
			req.Host = host
		}
		signTest(t, req, service, "Action=GetCallerIdentity")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("sts", "", "999999999999"); code != 200 || len(got) != 1 || got[0] != "" {
		t.Errorf("STS with a client's account header: %d, upstream saw %q, want none", code, got)
	}
	got = nil
	if code := send("sns", "", "999999999999"); code != 200 || len(got) != 1 || got[0] != "000000000000" {
		t.Errorf("SNS: %d, upstream saw %q, want the broker's account", code, got)
	}
	got = nil
	port := strings.TrimPrefix(shim.URL, "http://127.0.0.1")
	for _, h := range []string{"rebind.example" + port, "localhost" + port, "127.0.0.1", "127.0.0.1:1"} {
		if code := send("sns", h, ""); code != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", h, code)
		}
	}
	if len(got) != 0 {
		t.Errorf("a request with a foreign Host reached the emulator: %q", got)
	}
}
