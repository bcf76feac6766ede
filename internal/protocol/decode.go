package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// decodeStrict decodes exactly one JSON value from b into v, rejecting input
// over limit bytes, unknown fields and trailing data. what names the document
// in error messages.
func decodeStrict(b []byte, limit int, what string, v any) error {
	if len(b) > limit {
		return fmt.Errorf("%s is %d bytes, over the %d-byte limit: %w", what, len(b), limit, ErrTooLarge)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("%s is empty; expected a JSON object", what)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s is not valid: %s", what, describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s is not valid: unexpected data after the JSON object", what)
	}
	return nil
}

// describeJSONError turns encoding/json errors into one short phrase.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d (%v)", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the document"
		}
		return fmt.Sprintf("field %q must be %s, not a JSON %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	default:
		// DisallowUnknownFields reports `json: unknown field "x"`.
		msg := err.Error()
		if len(msg) > 6 && msg[:6] == "json: " {
			msg = msg[6:]
		}
		return msg
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "uint64", "int32", "uint32":
		return "an integer"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	default:
		return "a " + goKind
	}
}
