package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func encodedTestProof(t testing.TB) []byte {
	p := signTest(t, "", testDigest("run-1"), testNow)
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The decoder is strict about the JSON itself; each case is an otherwise
// valid proof.
func TestDecodeProofRejects(t *testing.T) {
	good := encodedTestProof(t)
	if _, err := DecodeProof(good); err != nil {
		t.Fatal(err)
	}
	obj := string(good[1 : len(good)-1]) // fields without braces
	cases := map[string]string{
		"empty":                   ``,
		"null":                    `null`,
		"array":                   `[` + string(good) + `]`,
		"trailing object":         string(good) + `{}`,
		"trailing garbage":        string(good) + `x`,
		"unknown field":           `{"extra":1,` + obj + `}`,
		"duplicate field":         `{"v":1,` + obj + `}`,
		"duplicate field by case": `{"URL":"https://sts.us-east-1.amazonaws.com/",` + obj + `}`,
		"duplicate header field":  strings.Replace(string(good), `{"name":"Authorization",`, `{"name":"X","name":"Authorization",`, 1),
		"unknown header field":    strings.Replace(string(good), `{"name":"Authorization",`, `{"n":"X","name":"Authorization",`, 1),
		"header as string":        strings.Replace(string(good), `"headers":[`, `"headers":["x",`, 1),
		"too large":               `{"v":1,"body":"` + strings.Repeat("a", MaxProofSize) + `"}`,
		"no headers":              `{"v":1,"method":"POST","url":"https://sts.us-east-1.amazonaws.com/","headers":[],"body":"` + Body + `"}`,
		"version string":          strings.Replace(string(good), `"v":1`, `"v":"1"`, 1),
		"nested deep":             `{"v":[[[[[[[[[[1]]]]]]]]]]}`,
	}
	for name, in := range cases {
		if _, err := DecodeProof([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// FuzzDecodeProof: the decoder never panics, never accepts more than
// MaxProofSize bytes, and whatever it accepts is a fixed point of
// Encode/DecodeProof that still satisfies the shape checks, and the offline
// verifier checks run on it without panicking.
func FuzzDecodeProof(f *testing.F) {
	good := encodedTestProof(f)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"v":1,"method":"POST","url":"https://sts.us-east-1.amazonaws.com/","headers":[{"name":"Authorization","value":"x"}],"body":"` + Body + `"}`))
	f.Add(bytes.Replace(good, []byte(`"v":1`), []byte(`"V":1,"v":1`), 1))
	v := testVerifier(f, "", testNow, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeProof(data)
		if err != nil {
			var ie *Error
			if !errors.As(err, &ie) || ie.Kind != KindMalformed {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if len(data) > MaxProofSize || p.Method != Method || p.Body != Body || p.V != ProofVersion {
			t.Fatalf("accepted %q", data)
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := DecodeProof(enc)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("not a fixed point: %v", err)
		}
		_, _ = v.Check(p, Expect{Audience: testAudience, Digest: testDigest("run-1")})
	})
}
