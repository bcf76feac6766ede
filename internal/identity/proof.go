package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Fixed parts of the one request a proof may carry.
const (
	// ProofVersion is the only Proof.V this package accepts.
	ProofVersion = 1
	// Method is the only HTTP method accepted: the action travels in the
	// signed body, never in a query string (no GET form, no presigned URL).
	Method = "POST"
	// Body is the exact request body; nothing else is accepted.
	Body = "Action=GetCallerIdentity&Version=2011-06-15"
	// ContentType is the exact, signed Content-Type.
	ContentType = "application/x-www-form-urlencoded; charset=utf-8"

	// HeaderAudience carries the broker's topic ARN; it must be signed.
	HeaderAudience = "X-Deploy-Broker-Audience"
	// HeaderDigest carries the hex SHA-256 of the canonical request (see
	// Digest); it must be signed.
	HeaderDigest = "X-Deploy-Broker-Request-Sha256"

	// MaxProofSize bounds an encoded proof. A session token is at most a few
	// KiB; 16 KiB leaves room and keeps the message well under SNS's limit.
	MaxProofSize = 16 << 10
	// maxHeaders bounds the header list (7 names are allowed at all).
	maxHeaders = 8
	// maxHeaderValue bounds one header value (the session token is largest).
	maxHeaderValue = 8 << 10
)

// Proof is a SigV4-signed sts:GetCallerIdentity request, carried in a broker
// message instead of credentials. It holds no secret key; it does hold the
// session token of temporary credentials (as Vault's IAM login does), which is
// useless without the secret key. Replayed to STS it only answers "who signed
// this", for at most 15 minutes, and only together with the audience and
// request digest it is bound to.
type Proof struct {
	V       int      `json:"v"`
	Method  string   `json:"method"`
	URL     string   `json:"url"`
	Headers []Header `json:"headers"`
	Body    string   `json:"body"`
}

// Header is one request header. A list, not a map, so that duplicates are
// seen (and refused) rather than silently merged.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Encode returns the proof as compact JSON.
func (p *Proof) Encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("identity: encoded proof is %d bytes, over %d", len(b), MaxProofSize)
	}
	return b, nil
}

// DecodeProof parses an encoded proof strictly: at most MaxProofSize bytes,
// one JSON object, no unknown or duplicate fields (Go matches field names
// case-insensitively, so "URL" and "url" would otherwise both land in URL),
// no trailing data, and the shape checks of Check. It does not verify
// anything against STS; see Verifier.Verify.
func DecodeProof(data []byte) (*Proof, error) {
	if len(data) > MaxProofSize {
		return nil, fail(KindMalformed, "proof is %d bytes, over %d", len(data), MaxProofSize)
	}
	if err := noDuplicateKeys(data); err != nil {
		return nil, &Error{Kind: KindMalformed, Detail: "proof JSON", Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Proof
	if err := dec.Decode(&p); err != nil {
		return nil, &Error{Kind: KindMalformed, Detail: "proof JSON", Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail(KindMalformed, "trailing data after the proof")
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// noDuplicateKeys walks the JSON and refuses an object that names a key twice
// (compared case-insensitively, as encoding/json matches them).
func noDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj  bool
		key  bool // next string token in an object is a key
		seen map[string]bool
	}
	var stack []*frame
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if depth++; depth > 8 {
					return errors.New("nested too deep")
				}
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: t == '{', key: t == '{', seen: map[string]bool{}})
			default:
				depth--
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.obj && top.key {
				k := strings.ToLower(t)
				if top.seen[k] {
					return fmt.Errorf("duplicate key %q", t)
				}
				top.seen[k] = true
				top.key = false
				continue
			}
			if top != nil && top.obj {
				top.key = true
			}
		default:
			if top != nil && top.obj {
				top.key = true
			}
		}
	}
}

// check validates the fixed shape that needs no configuration: version,
// method, body, header count, names and values. Verify adds the rest.
func (p *Proof) check() error {
	if p.V != ProofVersion {
		return fail(KindMalformed, "proof version %d, want %d", p.V, ProofVersion)
	}
	if p.Method != Method {
		return fail(KindMalformed, "method %q, only POST is accepted", clip(p.Method))
	}
	if p.Body != Body {
		return fail(KindMalformed, "body is not the fixed GetCallerIdentity body")
	}
	if len(p.Headers) == 0 || len(p.Headers) > maxHeaders {
		return fail(KindMalformed, "%d headers", len(p.Headers))
	}
	seen := map[string]bool{}
	for _, h := range p.Headers {
		name := strings.ToLower(h.Name)
		if !allowedHeaders[name] || h.Name != canonicalName[name] {
			return fail(KindMalformed, "header %q is not allowed", clip(h.Name))
		}
		if seen[name] {
			return fail(KindMalformed, "header %q appears twice", h.Name)
		}
		seen[name] = true
		if err := checkHeaderValue(h.Value); err != nil {
			return &Error{Kind: KindMalformed, Detail: "header " + h.Name, Err: err}
		}
	}
	for _, name := range requiredHeaders {
		if !seen[name] {
			return fail(KindMalformed, "header %q is missing", canonicalName[name])
		}
	}
	return nil
}

// allowedHeaders are the only header names a proof may carry (lowercase).
// Host is not among them: it comes from the allowlisted URL. Content-Length
// is set by the HTTP client from the fixed body (and may be signed).
var allowedHeaders = map[string]bool{
	"authorization":                  true,
	"content-type":                   true,
	"x-amz-date":                     true,
	"x-amz-security-token":           true,
	"x-deploy-broker-audience":       true,
	"x-deploy-broker-request-sha256": true,
}

// canonicalName is the exact spelling a header must have in a proof.
var canonicalName = map[string]string{
	"authorization":                  "Authorization",
	"content-type":                   "Content-Type",
	"x-amz-date":                     "X-Amz-Date",
	"x-amz-security-token":           "X-Amz-Security-Token",
	"x-deploy-broker-audience":       HeaderAudience,
	"x-deploy-broker-request-sha256": HeaderDigest,
}

var requiredHeaders = []string{"authorization", "content-type", "x-amz-date", "x-deploy-broker-audience", "x-deploy-broker-request-sha256"}

// checkHeaderValue refuses values that could split or smuggle headers, or that
// SigV4 would canonicalise differently from how they travel (leading,
// trailing or repeated spaces).
func checkHeaderValue(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	if len(v) > maxHeaderValue {
		return fmt.Errorf("value of %d bytes", len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("byte 0x%02x in value", c)
		}
	}
	if strings.TrimSpace(v) != v || strings.Contains(v, "  ") {
		return errors.New("value has leading, trailing or repeated spaces")
	}
	return nil
}

func (p *Proof) header(lower string) string {
	for _, h := range p.Headers {
		if strings.ToLower(h.Name) == lower {
			return h.Value
		}
	}
	return ""
}

// clip shortens attacker-controlled text before it goes into an error.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
