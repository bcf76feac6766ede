package runner

import (
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Compression of message bodies.
//
// A message starts as plain JSON (protocol.MessageBuilder) and may grow as
// long as it can still be sent within its limit (what is left of the
// request's 1 MiB, at most the message limit) in one of two forms:
//
//   - plain: the body itself is within the limit;
//   - compressed ({"v":1,"gz":…}, compression on): its uncompressed body is
//     at most maxRaw bytes and an upper bound of its compressed size
//     (protocol.MessageCompressor.Bound: what is already compressed, exactly,
//     plus the worst case of deflate for the rest) is within the limit.
//
// The bound is never wrong, so no body is ever over its limit and nothing is
// ever split or re-encoded. The compressor starts only when the plain body
// outgrows the limit (a burst: the request is filling while the previous one
// is in flight); it then compresses what it has and flushes whenever the
// bound reaches the limit, which makes the bound exact again, until less
// than minFlush bytes are left to gain.
//
// When the message closes, a body under compressMin bytes goes plain (a lone
// line or a small batch: no compression, no delay). A larger one is
// compressed (at once if the compressor has not started) and goes in
// whichever form is smaller among those within the limit: random or binary
// output, which gzip+base64 does not shrink, goes plain.

const (
	// DefaultCompressMin is the smallest body that is compressed.
	DefaultCompressMin = 8 << 10
	// DefaultMaxRawMessageBytes bounds the uncompressed body of one
	// compressed message: the memory the batcher holds for the open message,
	// and what a receiver expands one message to.
	DefaultMaxRawMessageBytes = 2 << 20
	// minFlush: when the bound is over the limit and fewer than this many
	// bytes could be compressed to make it exact, the message is full.
	minFlush = 4 << 10
)

// fits reports whether the open message, including what was appended after
// m, can still be sent within its limit, plain or compressed. It may start
// the compressor, or compress the bytes before m for good.
func (b *batcher) fits(m protocol.Mark) bool {
	limit := b.limit()
	n := b.mb.Len()
	if n <= limit {
		return true
	}
	if !b.compress || n > b.maxRaw || b.mb.Records() > protocol.MaxRecordsPerMessage {
		return false
	}
	if !b.gz.Active() {
		b.gz.Start(&b.mb)
	}
	if b.gz.Bound(&b.mb) <= limit {
		return true
	}
	if b.gz.Unflushed(m) < minFlush {
		return false
	}
	b.gz.FlushTo(&b.mb, m)
	return b.gz.Bound(&b.mb) <= limit
}

// finish closes the open message and returns its body, the length of its
// plain form and whether the body is compressed. The body is valid until the
// next message opens.
func (b *batcher) finish() (body []byte, raw int, gz bool) {
	limit := b.limit()
	raw = b.mb.Len()
	if !b.compress || (raw <= limit && raw < b.compressMin) {
		b.gz.Stop()
		return b.mb.Bytes(), raw, false
	}
	if !b.gz.Active() {
		b.gz.Start(&b.mb)
	}
	plain, z := b.gz.Finish(&b.mb)
	if raw <= limit && len(plain) <= len(z) {
		return plain, raw, false
	}
	if len(z) > limit {
		// fits guarantees it cannot happen; send it anyway and let SQS say.
		b.log.Error("a compressed message is over its size limit (a bug in the runner)", "bytes", len(z), "limit", limit, "raw", raw)
	}
	return z, raw, true
}
