package localbroker

import (
	"net/http"
	"strings"
)

// STSEndpoint is the STS endpoint the local dispatcher verifies proofs of
// identity against (the endpoint deploy-trigger signs for): tests that sign
// requests as another principal than Identity use it.
func (b *Broker) STSEndpoint() string {
	if b.shim == nil {
		return ""
	}
	return b.shim.URL
}

// refuseBrowsers guards local mode's endpoints against web pages (issue
// 24): a browser names the page's origin in an Origin header on every
// cross-origin request and preflight, which no AWS SDK or CLI sends, so a
// request carrying one is refused before it reaches the emulator; and no
// answer carries the emulator's permissive Access-Control-* headers, so a
// browser lets no page read one.
func refuseBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Origin"]; ok {
			http.Error(w, "local mode's endpoint answers local AWS clients only, not web pages (a request with an Origin header)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(noCORS{w}, r)
	})
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
