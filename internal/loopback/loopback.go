// Package loopback guards HTTP endpoints that listen on 127.0.0.1 for
// local clients only (local mode's endpoints, the runner's credentials
// endpoint for its job) against web pages: a browser names the page's
// origin in an Origin header on every cross-origin request and preflight,
// which no AWS SDK or CLI sends; and a page that reaches a loopback port
// through DNS rebinding sends its own host name as the Host.
package loopback

import (
	"net"
	"net/http"
	"strings"
)

// RefuseBrowsers refuses every request carrying an Origin header before it
// reaches next, and strips Access-Control-* headers from next's answers, so
// that a browser lets no page read one.
func RefuseBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Origin"]; ok {
			http.Error(w, "this endpoint answers local AWS clients only, not web pages (a request with an Origin header)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(noCORS{w}, r)
	})
}

// Guard is RefuseBrowsers that also refuses a request whose Host is not
// addr (the listener's "127.0.0.1:PORT") or "localhost:PORT": a page that
// rebinds its own name to 127.0.0.1 sends that name.
func Guard(addr string, next http.Handler) http.Handler {
	_, port, _ := net.SplitHostPort(addr)
	return RefuseBrowsers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host := strings.ToLower(r.Host); port == "" || (host != addr && host != "localhost:"+port) {
			http.Error(w, "this endpoint answers http://"+addr+" only", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// noCORS drops Access-Control-* headers from an answer.
type noCORS struct{ http.ResponseWriter }

func (w noCORS) strip() {
	for k := range w.Header() {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			w.Header().Del(k)
		}
	}
}

func (w noCORS) WriteHeader(code int) { w.strip(); w.ResponseWriter.WriteHeader(code) }

func (w noCORS) Write(b []byte) (int, error) { w.strip(); return w.ResponseWriter.Write(b) }

// Flush passes on streaming (long polls answer at once when done).
func (w noCORS) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
