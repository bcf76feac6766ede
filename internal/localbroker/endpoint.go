package localbroker

import (
	"net/http"

	"github.com/deploy-broker/deploy-broker/internal/loopback"
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
// 24): a request with an Origin header (a browser's, never an AWS SDK's or
// CLI's) is refused before it reaches the emulator, and no answer carries
// the emulator's permissive Access-Control-* headers. Shared with the
// runner's credentials endpoint (internal/loopback).
func refuseBrowsers(next http.Handler) http.Handler { return loopback.RefuseBrowsers(next) }
