package identity

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Time windows.
const (
	// MaxAge is how long STS itself accepts a SigV4 signature.
	MaxAge = 15 * time.Minute
	// MaxFutureSkew is how far in the future a signing time may be.
	MaxFutureSkew = 5 * time.Minute
	// DefaultTimeout bounds the call to STS.
	DefaultTimeout = 10 * time.Second
	// MaxResponseSize caps what is read of the STS answer.
	MaxResponseSize = 64 << 10
)

// VerifierConfig configures a Verifier. Everything that decides where the
// proof is sent comes from here, never from the proof.
type VerifierConfig struct {
	// Partition (aws, aws-cn, aws-us-gov) and Region of the broker. The
	// proof must be signed for https://sts.<Region>.<partition suffix>/
	// with credential scope <Region>/sts.
	Partition string
	Region    string
	// AllowGlobalEndpoint also accepts https://sts.amazonaws.com/ (aws
	// partition only; credential scope us-east-1).
	AllowGlobalEndpoint bool
	// Endpoint, if set, REPLACES the allowlist with this one URL: for local
	// mode and tests (http is accepted only for a loopback IP literal) or a
	// VPC endpoint (https). Credential scope stays <Region>/sts.
	Endpoint string
	// Transport for the STS call; nil means a clone of
	// http.DefaultTransport. Redirects are never followed whatever it is.
	Transport http.RoundTripper
	// Timeout for the STS call; zero means DefaultTimeout.
	Timeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verifier checks proofs and asks STS who signed them. It is safe for
// concurrent use.
type Verifier struct {
	partition string
	region    string
	allowed   map[string]string // canonical URL -> credential-scope region
	client    *http.Client
	now       func() time.Time
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	regional, err := regionalURL(cfg.Partition, cfg.Region)
	if err != nil {
		return nil, err
	}
	v := &Verifier{partition: cfg.Partition, region: cfg.Region, allowed: map[string]string{}, now: cfg.Now}
	switch {
	case cfg.Endpoint != "":
		u, err := normaliseOverride(cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		v.allowed[u] = cfg.Region
	default:
		v.allowed[regional] = cfg.Region
		if cfg.AllowGlobalEndpoint {
			if cfg.Partition != "aws" {
				return nil, fmt.Errorf("identity: the global STS endpoint exists only in partition aws")
			}
			v.allowed["https://sts.amazonaws.com/"] = "us-east-1"
		}
	}
	if v.now == nil {
		v.now = time.Now
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	v.client = &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 3xx is then refused as non-200
		},
	}
	return v, nil
}

// normaliseOverride accepts scheme://host[:port][/] and returns
// scheme://host[:port]/. http only for a loopback IP literal.
func normaliseOverride(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("identity: endpoint override: %w", err)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Host == "" {
		return "", fmt.Errorf("identity: endpoint override %q must be scheme://host[:port]/", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("identity: endpoint override %q: http only for a loopback IP address", s)
		}
	default:
		return "", fmt.Errorf("identity: endpoint override %q: scheme must be https (or http on loopback)", s)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + "/", nil
}

// Expect is what the dispatcher rebuilt from the received message.
type Expect struct {
	// Audience: this broker's topic ARN.
	Audience string
	// Digest: Digest() over the message's fields, recomputed by the receiver.
	Digest [32]byte
	// NotBefore (optional): the request's requested_at. A signature made
	// more than MaxFutureSkew before it is refused.
	NotBefore time.Time
	// NotAfter (optional): the request's expires_at. Refused once now or the
	// signing time is past it.
	NotAfter time.Time
}

// Verify checks the proof offline (shape, endpoint, binding, time, signed
// headers and credential scope) and, only if all that passes, sends the
// signed request to the allowlisted STS URL and returns who signed it.
func (v *Verifier) Verify(ctx context.Context, p *Proof, exp Expect) (Principal, error) {
	target, err := v.Check(p, exp)
	if err != nil {
		return Principal{}, err
	}
	return v.submit(ctx, target, p)
}

// Check runs every offline check of Verify and returns the URL Verify would
// call. It never contacts the network.
func (v *Verifier) Check(p *Proof, exp Expect) (string, error) {
	if p == nil {
		return "", fail(KindMalformed, "no proof")
	}
	if err := p.check(); err != nil {
		return "", err
	}
	// Exact match against the allowlist: no parsing of the message's URL,
	// so no userinfo, port, path, query, fragment, case or encoding tricks.
	scopeRegion, ok := v.allowed[p.URL]
	if !ok {
		return "", fail(KindHostNotAllowed, "%q", clip(p.URL))
	}
	target := p.URL

	auth, err := parseAuthorization(p.header("authorization"))
	if err != nil {
		return "", err
	}
	if auth.region != scopeRegion || auth.service != "sts" {
		return "", fail(KindMalformed, "credential scope %s/%s, want %s/sts", clip(auth.region), clip(auth.service), scopeRegion)
	}
	// Every header sent must be signed, and every signed header must be
	// one we send (host and content-length come from the URL and body).
	signed := map[string]bool{}
	for _, h := range auth.signedHeaders {
		signed[h] = true
		if h == "host" || h == "content-length" {
			continue
		}
		if h == "authorization" || p.header(h) == "" {
			return "", fail(KindMalformed, "signed header %q is not in the proof", clip(h))
		}
	}
	for _, h := range []string{"host", "x-amz-date", "content-type", "x-deploy-broker-audience", "x-deploy-broker-request-sha256"} {
		if !signed[h] {
			return "", fail(KindMalformed, "header %q is not signed", h)
		}
	}
	for _, h := range p.Headers {
		if n := strings.ToLower(h.Name); n != "authorization" && !signed[n] {
			return "", fail(KindMalformed, "header %q is not signed", h.Name)
		}
	}
	if p.header("content-type") != ContentType {
		return "", fail(KindMalformed, "content type %q", clip(p.header("content-type")))
	}

	// Binding: the signed headers name this broker and this request.
	if exp.Audience == "" {
		return "", fail(KindBinding, "no expected audience configured")
	}
	if p.header("x-deploy-broker-audience") != exp.Audience {
		return "", fail(KindBinding, "audience %q, want %q", clip(p.header("x-deploy-broker-audience")), exp.Audience)
	}
	if p.header("x-deploy-broker-request-sha256") != DigestHex(exp.Digest) {
		return "", fail(KindBinding, "request digest does not match the message")
	}

	// Time: STS's own 15-minute window, bounded further by the request.
	signedAt, err := time.Parse("20060102T150405Z", p.header("x-amz-date"))
	if err != nil {
		return "", fail(KindMalformed, "X-Amz-Date %q", clip(p.header("x-amz-date")))
	}
	if auth.date != signedAt.Format("20060102") {
		return "", fail(KindMalformed, "credential date %s does not match X-Amz-Date", clip(auth.date))
	}
	now := v.now()
	switch {
	case signedAt.After(now.Add(MaxFutureSkew)):
		return "", fail(KindStale, "signed at %s, in the future", signedAt.Format(time.RFC3339))
	case now.Sub(signedAt) > MaxAge:
		return "", fail(KindStale, "signed at %s, over %s ago", signedAt.Format(time.RFC3339), MaxAge)
	case !exp.NotBefore.IsZero() && signedAt.Before(exp.NotBefore.Add(-MaxFutureSkew)):
		return "", fail(KindStale, "signed at %s, before the request was made", signedAt.Format(time.RFC3339))
	case !exp.NotAfter.IsZero() && (now.After(exp.NotAfter) || signedAt.After(exp.NotAfter)):
		return "", fail(KindStale, "the request expired at %s", exp.NotAfter.Format(time.RFC3339))
	}
	return target, nil
}

type authorization struct {
	accessKey, date, region, service string
	signedHeaders                    []string
}

var (
	accessKeyRE    = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
	headerNameRE   = regexp.MustCompile(`^[a-z0-9-]+$`)
	signatureHexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	errorCodeRE    = regexp.MustCompile(`^[A-Za-z0-9.]{1,64}$`)
)

// parseAuthorization accepts exactly
// "AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX"
// (the layout the SDK writes), with sorted, unique, lowercase header names.
func parseAuthorization(s string) (authorization, error) {
	var a authorization
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(s, algo) {
		return a, fail(KindMalformed, "authorization is not AWS4-HMAC-SHA256")
	}
	parts := strings.Split(s[len(algo):], ", ")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "Credential=") || !strings.HasPrefix(parts[1], "SignedHeaders=") || !strings.HasPrefix(parts[2], "Signature=") {
		return a, fail(KindMalformed, "authorization layout")
	}
	scope := strings.Split(strings.TrimPrefix(parts[0], "Credential="), "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || !accessKeyRE.MatchString(scope[0]) || len(scope[1]) != 8 {
		return a, fail(KindMalformed, "authorization credential scope")
	}
	a.accessKey, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(strings.TrimPrefix(parts[1], "SignedHeaders="), ";")
	for i, h := range a.signedHeaders {
		if !headerNameRE.MatchString(h) || (i > 0 && a.signedHeaders[i-1] >= h) {
			return a, fail(KindMalformed, "authorization signed headers")
		}
		if h != "host" && h != "content-length" && !allowedHeaders[h] {
			return a, fail(KindMalformed, "signed header %q is not allowed", clip(h))
		}
	}
	if !signatureHexRE.MatchString(strings.TrimPrefix(parts[2], "Signature=")) {
		return a, fail(KindMalformed, "authorization signature")
	}
	return a, nil
}

// submit sends the proof's request to target (an allowlist entry, not the
// message's string) and parses the answer.
func (v *Verifier) submit(ctx context.Context, target string, p *Proof) (Principal, error) {
	req, err := http.NewRequestWithContext(ctx, Method, target, strings.NewReader(Body))
	if err != nil {
		return Principal{}, &Error{Kind: KindMalformed, Err: err}
	}
	for _, h := range p.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return Principal{}, &Error{Kind: KindUnavailable, Detail: "calling STS", Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return Principal{}, &Error{Kind: KindUnavailable, Detail: "reading the STS answer", Err: err}
	}
	if len(body) > MaxResponseSize {
		return Principal{}, fail(KindRefused, "STS answer over %d bytes", MaxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		code := stsErrorCode(body)
		switch {
		case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
			code == "Throttling", code == "RequestLimitExceeded", code == "ServiceUnavailable", code == "InternalFailure":
			return Principal{}, fail(KindUnavailable, "STS answered HTTP %d %s", resp.StatusCode, code)
		default:
			return Principal{}, fail(KindRefused, "STS answered HTTP %d %s", resp.StatusCode, code)
		}
	}
	return v.parseResponse(body)
}

// stsErrorCode extracts <Error><Code> from an STS error answer, if any;
// only a short code of letters and digits is returned.
func stsErrorCode(body []byte) string {
	// STS writes ErrorResponse/Error/Code; moto writes
	// ErrorResponse/Errors/Error/Code.
	var e struct {
		Code  string `xml:"Error>Code"`
		Code2 string `xml:"Errors>Error>Code"`
	}
	if xml.Unmarshal(body, &e) != nil {
		return ""
	}
	code := e.Code
	if code == "" {
		code = e.Code2
	}
	if !errorCodeRE.MatchString(code) {
		return ""
	}
	return code
}
