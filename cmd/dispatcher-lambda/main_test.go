package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// fakeRuntimeAPI plays the Lambda Runtime API on loopback and records the
// init error posts it gets.
type fakeRuntimeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	posts  []initErrorPost
	status int
}

type initErrorPost struct {
	method, path, errorType, contentType string
	body                                 map[string]any
}

func newFakeRuntimeAPI(t *testing.T, status int) *fakeRuntimeAPI {
	f := &fakeRuntimeAPI{status: status}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p := initErrorPost{method: r.Method, path: r.URL.Path, errorType: r.Header.Get("Lambda-Runtime-Function-Error-Type"), contentType: r.Header.Get("Content-Type")}
		if err := json.Unmarshal(b, &p.body); err != nil {
			t.Errorf("body %q is not JSON: %v", b, err)
		}
		f.mu.Lock()
		f.posts = append(f.posts, p)
		f.mu.Unlock()
		w.WriteHeader(f.status)
		io.WriteString(w, `{"status":"OK"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeRuntimeAPI) addr() string { return strings.TrimPrefix(f.URL, "http://") }

// Issue 24: the function started with an incomplete environment, or with
// one it cannot start from, reports the reason to the Runtime API's
// /runtime/init/error (Lambda then fails the invoke with it instead of an
// empty 502) and exits 1. The real binary runs, with the Runtime API played
// by a loopback server; the old binary exited without a word to it.
func TestStartUpErrorsReachTheRuntimeAPI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bootstrap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cases := []struct {
		name, errType, msg string
		env                []string
	}{
		{"incomplete environment", errTypeEnvironment, "dispatcher environment is incomplete: " + protocol.EnvConfig, nil},
		{"configuration file missing", errTypeStart, "no-such-broker.yaml", []string{
			protocol.EnvConfig + "=" + filepath.Join(t.TempDir(), "no-such-broker.yaml"), protocol.EnvCluster + "=broker",
			protocol.EnvLedgerTable + "=ledger", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := newFakeRuntimeAPI(t, http.StatusAccepted)
			cmd := exec.Command(bin)
			cmd.Env = append([]string{"AWS_LAMBDA_RUNTIME_API=" + api.addr()}, c.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want code 1\n%s", err, out)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			if len(api.posts) != 1 {
				t.Fatalf("%d requests to the Runtime API, want 1 init error\n%s", len(api.posts), out)
			}
			p := api.posts[0]
			if p.method != http.MethodPost || p.path != "/2018-06-01/runtime/init/error" || p.errorType != c.errType || p.contentType != "application/json" {
				t.Errorf("got %s %s, error type %q, content type %q; want POST /2018-06-01/runtime/init/error, %q", p.method, p.path, p.errorType, p.contentType, c.errType)
			}
			if msg, _ := p.body["errorMessage"].(string); !strings.Contains(msg, c.msg) || p.body["errorType"] != c.errType {
				t.Errorf("body %v; want errorMessage with %q, errorType %q", p.body, c.msg, c.errType)
			}
			if !strings.Contains(string(out), "dispatcher cannot start") {
				t.Errorf("the log lacks the reason:\n%s", out)
			}
		})
	}
}

// A Runtime API that refuses the report is logged; nothing to report to
// outside Lambda.
func TestReportInitErrorAnswers(t *testing.T) {
	api := newFakeRuntimeAPI(t, http.StatusInternalServerError)
	if err := reportInitError(t.Context(), api.addr(), errTypeStart, errors.New("x")); err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("refused report: %v", err)
	}
	if err := reportInitError(t.Context(), "", errTypeStart, errors.New("x")); err != nil {
		t.Errorf("no Runtime API: %v", err)
	}
	ok := newFakeRuntimeAPI(t, http.StatusAccepted)
	long := strings.Repeat("é", maxInitErrorMessage)
	if err := reportInitError(t.Context(), ok.addr(), errTypeStart, errors.New(long)); err != nil {
		t.Fatal(err)
	}
	if msg, _ := ok.posts[0].body["errorMessage"].(string); len(msg) > maxInitErrorMessage+len("…") {
		t.Errorf("message of %d bytes not clipped", len(msg))
	}
}
