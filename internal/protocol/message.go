package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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
	if err := decodeStrict(b, MaxMessageBytes, "feedback message", &m); err != nil {
		return nil, err
	}
	if err := checkKeys(b, "feedback message"); err != nil {
		return nil, err
	}
	if m.V != Version {
		return nil, fmt.Errorf("feedback message has protocol version %d; this deploy-trigger speaks version %d (upgrade it to match the broker)", m.V, Version)
	}
	recs := m.Records
	if m.Gz != "" {
		if len(m.Records) > 0 {
			return nil, fmt.Errorf("feedback message has both records and gz")
		}
		raw, err := base64.StdEncoding.DecodeString(m.Gz)
		if err != nil {
			return nil, fmt.Errorf("feedback message gz is not base64: %w", err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("feedback message gz is not gzip: %w", err)
		}
		inner, err := io.ReadAll(io.LimitReader(zr, MaxDecompressedBytes+1))
		if err != nil {
			return nil, fmt.Errorf("feedback message gz is corrupt: %w", err)
		}
		if len(inner) > MaxDecompressedBytes {
			return nil, fmt.Errorf("feedback message expands past %d bytes: %w", MaxDecompressedBytes, ErrTooLarge)
		}
		if err := decodeStrict(inner, MaxDecompressedBytes, "feedback records", &recs); err != nil {
			return nil, err
		}
		if err := checkKeys(inner, "feedback records"); err != nil {
			return nil, err
		}
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
