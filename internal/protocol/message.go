package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Message is the body of one feedback-queue message: records in order. A
// sender may compress: then Records is empty and Gz holds the base64 of the
// gzip of the JSON array of records.
type Message struct {
	V       int      `json:"v"`
	Records []Record `json:"records,omitempty"`
	Gz      string   `json:"gz,omitempty"`
}

// EncodeMessage renders records as a message body (uncompressed).
func EncodeMessage(records []Record) ([]byte, error) {
	return marshal(Message{V: Version, Records: records})
}

// EncodeMessageGzip renders records as a compressed message body.
func EncodeMessageGzip(records []Record) ([]byte, error) {
	inner, err := marshal(records)
	if err != nil {
		return nil, err
	}
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
	if _, err := zw.Write(inner); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return marshal(Message{V: Version, Gz: base64.StdEncoding.EncodeToString(zb.Bytes())})
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeMessage strictly decodes a feedback message body and returns its
// records, each validated. Like [DecodeRequest] it refuses field names in
// another case and repeated fields (see checkKeys), in the message and in
// its compressed records.
func DecodeMessage(b []byte) ([]Record, error) {
	var m Message
	var raw []byte // the gzip stream, when compressed
	if gz, ok := gzBase64(b); ok {
		// The compressed form exactly as senders write it: its base64 is
		// decoded straight from the body.
		var err error
		if raw, err = base64.StdEncoding.AppendDecode(nil, gz); err != nil {
			return nil, fmt.Errorf("feedback message gz is not base64: %w", err)
		}
	} else {
		if err := decodeStrict(b, MaxMessageBytes, "feedback message", &m); err != nil {
			return nil, err
		}
		if err := checkKeys(b, "feedback message"); err != nil {
			return nil, err
		}
		if m.V != Version {
			return nil, fmt.Errorf("feedback message has protocol version %d; this deploy-trigger speaks version %d (upgrade it to match the broker)", m.V, Version)
		}
		if m.Gz != "" {
			if len(m.Records) > 0 {
				return nil, fmt.Errorf("feedback message has both records and gz")
			}
			var err error
			if raw, err = base64.StdEncoding.DecodeString(m.Gz); err != nil {
				return nil, fmt.Errorf("feedback message gz is not base64: %w", err)
			}
		}
	}
	recs := m.Records
	if raw != nil {
		inner, err := gunzip(raw)
		if err != nil {
			return nil, err
		}
		if fast, ok := fastRecords(inner, string(inner)); ok {
			recs = fast
		} else {
			if err := decodeStrict(inner, MaxDecompressedBytes, "feedback records", &recs); err != nil {
				return nil, err
			}
			if err := checkKeys(inner, "feedback records"); err != nil {
				return nil, err
			}
		}
		gunzipBufs.Put(&inner)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("feedback message holds no records")
	}
	if len(recs) > MaxRecordsPerMessage {
		return nil, fmt.Errorf("feedback message holds %d records, over the %d limit", len(recs), MaxRecordsPerMessage)
	}
	for i := range recs {
		if err := recs[i].validate(); err != nil {
			return nil, fmt.Errorf("feedback message record %d: %w", i, err)
		}
	}
	return recs, nil
}

// gunzipBufs are the buffers gunzip decompresses into: a message expands to
// about a megabyte, which is not worth allocating afresh each time.
var gunzipBufs = sync.Pool{New: func() any { return new([]byte) }}

var gzipReaders sync.Pool // of *gzip.Reader

// gunzip decompresses a message's gz, up to MaxDecompressedBytes, into a
// buffer from gunzipBufs (the caller puts it back when done with it).
func gunzip(raw []byte) ([]byte, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(raw))
	} else {
		err = zr.Reset(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("feedback message gz is not gzip: %w", err)
	}
	defer gzipReaders.Put(zr)
	bp := gunzipBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := zr.Read(buf[len(buf):min(cap(buf), MaxDecompressedBytes+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > MaxDecompressedBytes {
			return nil, fmt.Errorf("feedback message expands past %d bytes: %w", MaxDecompressedBytes, ErrTooLarge)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("feedback message gz is corrupt: %w", err)
		}
	}
}

// gzBase64 returns the base64 of a compressed body written exactly as
// [MessageCompressor] and [EncodeMessageGzip] write it ({"v":1,"gz":"…"},
// nothing but the base64 alphabet inside the string, within
// MaxMessageBytes); ok false for any other body, which the ordinary decoder
// judges.
func gzBase64(b []byte) (gz []byte, ok bool) {
	if len(b) > MaxMessageBytes || len(b) <= len(gzHead)+len(gzTail) ||
		!bytes.HasPrefix(b, []byte(gzHead)) || !bytes.HasSuffix(b, []byte(gzTail)) {
		return nil, false
	}
	gz = b[len(gzHead) : len(b)-len(gzTail)]
	for _, c := range gz {
		if b64Value(c) < 0 && c != '=' {
			return nil, false
		}
	}
	return gz, true
}
