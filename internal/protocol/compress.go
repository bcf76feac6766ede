package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
)

// The compressed form of a message body (see [Message] and
// [EncodeMessageGzip]): {"v":1,"gz":"<base64 of the gzip of the JSON array
// of records>"}.
const (
	gzHead = `{"v":1,"gz":"`
	gzTail = `"}`
	// gzipHeaderLen is what gzip.Writer writes before the deflate stream
	// (no name, comment or extra field).
	gzipHeaderLen = 10
	// gzipEndLen bounds what Close adds after the last data block: the
	// final empty stored block with its padding, then CRC-32 and size.
	gzipEndLen = 6 + 8
	// closingLen is the most that Bytes appends to close a body ("]}}]}");
	// the last "}" is not part of the records array.
	closingLen = len("]}}]")
)

// deflateWorst bounds the deflate output for n input bytes whatever they
// are: compress/flate codes at most 65535 bytes per block and stores a block
// raw (5 bytes of header, at most one of padding) whenever its Huffman
// coding would not be smaller, so incompressible data grows by a few bytes
// per 64 KiB, never more.
func deflateWorst(n int) int { return n + 6*(n/65535+1) }

// GzBodyLen is the length of a compressed message body whose gzip stream is
// z bytes long.
func GzBodyLen(z int) int {
	return len(gzHead) + base64.StdEncoding.EncodedLen(z) + len(gzTail)
}

// MessageCompressor produces the compressed form of the message a
// [MessageBuilder] is writing, incrementally, so that a sender can keep
// appending records while it knows, without ever exceeding it, how large the
// compressed body would be if the message were closed now ([Bound]).
//
// Use: Start when the builder's message should (also) be compressed; after
// appending to the builder, Bound tells an upper bound of the compressed
// body. FlushTo compresses what precedes a [Mark] for good (those bytes
// must never be rolled back) and makes Bound exact for them. Finish closes
// the builder and returns both bodies. One compressor serves any number of
// messages in turn; its buffers are reused.
type MessageCompressor struct {
	zw      *gzip.Writer
	z       bytes.Buffer
	out     []byte
	fed     int // bytes of the builder's buffer written to zw
	flushed int // gzip bytes after the last flush (header included)
	active  bool
}

// Start begins compressing the message b is writing (nothing of it is
// compressed yet).
func (c *MessageCompressor) Start(b *MessageBuilder) {
	c.z.Reset()
	if c.zw == nil {
		c.zw, _ = gzip.NewWriterLevel(&c.z, gzip.BestSpeed)
	} else {
		c.zw.Reset(&c.z)
	}
	c.fed = len(messageHead) - 1 // the records array starts at its "["
	c.flushed = gzipHeaderLen
	c.active = true
}

// Stop forgets the current message (Start begins the next).
func (c *MessageCompressor) Stop() { c.active = false }

// Active reports whether Start was called for the current message.
func (c *MessageCompressor) Active() bool { return c.active }

// Bound is an upper bound of the length of the compressed body if b were
// closed now.
func (c *MessageCompressor) Bound(b *MessageBuilder) int {
	pending := len(b.buf) - c.fed + closingLen
	return GzBodyLen(c.flushed + deflateWorst(pending) + gzipEndLen)
}

// Unflushed is the number of bytes before m that FlushTo(b, m) would
// compress.
func (c *MessageCompressor) Unflushed(m Mark) int { return max(0, m.n-c.fed) }

// FlushTo compresses the builder's bytes before m and flushes the
// compressor, so that Bound counts them exactly. The caller must never roll
// the builder back past m afterwards.
func (c *MessageCompressor) FlushTo(b *MessageBuilder, m Mark) {
	if m.n <= c.fed {
		return
	}
	_, _ = c.zw.Write(b.buf[c.fed:m.n]) // writes to a bytes.Buffer do not fail
	c.fed = m.n
	_ = c.zw.Flush()
	c.flushed = c.z.Len()
}

// Finish closes the message (b.Bytes()) and returns its plain body and its
// compressed body. plain is valid until b's next Reset, gz until the next
// Finish. The compressor is stopped.
func (c *MessageCompressor) Finish(b *MessageBuilder) (plain, gz []byte) {
	plain = b.Bytes()
	_, _ = c.zw.Write(plain[c.fed : len(plain)-1])
	_ = c.zw.Close()
	c.out = append(c.out[:0], gzHead...)
	c.out = base64.StdEncoding.AppendEncode(c.out, c.z.Bytes())
	c.out = append(c.out, gzTail...)
	c.active = false
	return plain, c.out
}
