package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// checkKeys closes two gaps that encoding/json leaves in a strict decoder:
// it matches field names case-insensitively ("RUN_ID" fills run_id) and lets
// a repeated key silently override an earlier one. Every name in this
// protocol is lower-case, so keys must be too, and appear once per object.
// b must already be valid JSON.
func checkKeys(b []byte, what string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkKeys(dec, ""); err != nil {
		return fmt.Errorf("%s is not valid: %w", what, err)
	}
	return nil
}

func walkKeys(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			field := strings.TrimPrefix(path+"."+k, ".")
			if k != strings.ToLower(k) {
				return fmt.Errorf("field %q is not lower-case; field names are exact", truncate(field, 80))
			}
			if seen[k] {
				return fmt.Errorf("field %q appears twice", truncate(field, 80))
			}
			seen[k] = true
			if err := walkKeys(dec, field); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkKeys(dec, path); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}
