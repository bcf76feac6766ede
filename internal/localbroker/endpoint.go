package localbroker

// STSEndpoint is the STS endpoint the local dispatcher verifies proofs of
// identity against (the endpoint deploy-trigger signs for): tests that sign
// requests as another principal than Identity use it.
func (b *Broker) STSEndpoint() string {
	if b.shim == nil {
		return ""
	}
	return b.shim.URL
}
