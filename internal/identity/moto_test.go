package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/deploy-broker/deploy-broker/internal/moto"
)

// These tests run moto_server on 127.0.0.1 (internal/moto) and point both
// Sign and the Verifier at it through the explicit Endpoint override, so
// the real STS is never contacted. moto's STS answers GetCallerIdentity
// with the identity owning the access key in the Authorization header.
//
// What default moto does NOT check: the SigV4 signature, X-Amz-Date's age,
// the session token's validity. So against default moto these tests prove
// our offline checks and the end-to-end plumbing (right principal for the
// right key), not the cryptography; TestMotoSignatureIsChecked switches
// moto's request authentication on to prove the binding is cryptographic.

func startMoto(t *testing.T) *moto.Server {
	t.Helper()
	s, err := moto.Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var adminCreds = aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}

// motoCall sends a signed AWS query-protocol request to moto and returns
// the answer body (IAM has no client in go.mod; a signed form POST is all
// the query protocol needs).
func motoCall(t *testing.T, s *moto.Server, creds aws.Credentials, service string, params url.Values) string {
	t.Helper()
	body := params.Encode()
	req, err := http.NewRequest("POST", s.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, moto.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: HTTP %d %s", service, params.Get("Action"), resp.StatusCode, b)
	}
	return string(b)
}

func xmlField(t *testing.T, doc, name string) string {
	t.Helper()
	m := regexp.MustCompile("<" + name + ">([^<]+)</" + name + ">").FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no %s in %s", name, doc)
	}
	return m[1]
}

// createUser makes an IAM user in moto with an access key.
func createUser(t *testing.T, s *moto.Server, path, name string) aws.Credentials {
	motoCall(t, s, adminCreds, "iam", url.Values{"Action": {"CreateUser"}, "Version": {"2010-05-08"}, "UserName": {name}, "Path": {path}})
	doc := motoCall(t, s, adminCreds, "iam", url.Values{"Action": {"CreateAccessKey"}, "Version": {"2010-05-08"}, "UserName": {name}})
	return aws.Credentials{AccessKeyID: xmlField(t, doc, "AccessKeyId"), SecretAccessKey: xmlField(t, doc, "SecretAccessKey")}
}

// assumeRole makes a role (with a path) and assumes it with creds.
func assumeRole(t *testing.T, s *moto.Server, creds aws.Credentials, path, role, session string) aws.Credentials {
	const trust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`
	doc := motoCall(t, s, adminCreds, "iam", url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {role}, "Path": {path}, "AssumeRolePolicyDocument": {trust}})
	roleARN := xmlField(t, doc, "Arn")
	doc = motoCall(t, s, creds, "sts", url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN}, "RoleSessionName": {session}})
	return aws.Credentials{AccessKeyID: xmlField(t, doc, "AccessKeyId"), SecretAccessKey: xmlField(t, doc, "SecretAccessKey"), SessionToken: xmlField(t, doc, "SessionToken")}
}

func signWith(t *testing.T, s *moto.Server, c aws.Credentials, audience string, digest [32]byte, at time.Time) *Proof {
	t.Helper()
	p, err := Sign(context.Background(), SignInput{
		Credentials: credentials.StaticCredentialsProvider{Value: c},
		Region:      moto.Region, Partition: "aws", Audience: audience, Digest: digest,
		Endpoint: s.URL, Now: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func motoVerifier(t *testing.T, s *moto.Server) (*Verifier, *countingTransport) {
	ct := &countingTransport{rt: http.DefaultTransport}
	v, err := NewVerifier(VerifierConfig{Partition: "aws", Region: moto.Region, Endpoint: s.URL, Transport: ct, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v, ct
}

// roundTrip encodes and decodes, as the proof travels in a message.
func roundTrip(t *testing.T, p *Proof) *Proof {
	t.Helper()
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodeProof(b)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestMoto(t *testing.T) {
	s := startMoto(t)
	alice := createUser(t, s, "/ci/", "alice")
	bob := createUser(t, s, "/", "bob")
	deployer := assumeRole(t, s, alice, "/teams/web/", "deployer", "ci-run-7")
	digest := Digest([]Field{{"kind", "run"}, {"run_id", "r-1"}, {"job", "web"}, {"param.env", "prod"}})
	exp := Expect{Audience: testAudience, Digest: digest}

	// Property: distinct credentials yield distinct, correct principals;
	// each verification is exactly one call to the endpoint. Shown by
	// signing with each key and asserting the full ARN and account STS
	// (moto) returns for it.
	t.Run("distinct principals", func(t *testing.T) {
		v, ct := motoVerifier(t, s)
		cases := []struct {
			creds aws.Credentials
			arn   string
			kind  PrincipalKind
		}{
			{alice, "arn:aws:iam::123456789012:user/ci/alice", PrincipalUser},
			{bob, "arn:aws:iam::123456789012:user/bob", PrincipalUser},
			{deployer, "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7", PrincipalAssumedRole},
		}
		for i, c := range cases {
			p, err := v.Verify(context.Background(), roundTrip(t, signWith(t, s, c.creds, testAudience, digest, time.Now())), exp)
			if err != nil {
				t.Fatalf("%s: %v", c.arn, err)
			}
			if p.ARN != c.arn || p.Account != "123456789012" || p.Kind != c.kind || p.UserID == "" {
				t.Fatalf("got %+v, want %s", p, c.arn)
			}
			if n := ct.n.Load(); n != int32(i+1) {
				t.Fatalf("%d calls after %d proofs", n, i+1)
			}
		}
		// The assumed role's ARN has lost the path /teams/web/; the
		// catalogue's role ARN with its path still matches, by account
		// and name.
		p, _ := v.Verify(context.Background(), signWith(t, s, deployer, testAudience, digest, time.Now()), exp)
		if p.RoleARN != "arn:aws:iam::123456789012:role/deployer" || p.SessionName != "ci-run-7" {
			t.Fatalf("%+v", p)
		}
		for pattern, want := range map[string]bool{
			"arn:aws:iam::123456789012:role/teams/web/deployer":        true,
			"arn:aws:sts::123456789012:assumed-role/deployer/ci-run-*": true,
			"arn:aws:iam::123456789012:user/ci/alice":                  false,
			"arn:aws:iam::000000000000:role/deployer":                  false,
		} {
			if ok, err := MatchPrincipal(p, pattern); err != nil || ok != want {
				t.Errorf("%s: %v %v", pattern, ok, err)
			}
		}
	})

	// Property: a proof that does not fit the message is rejected BEFORE
	// contacting STS. Shown by the verifier's counting transport staying
	// at 0 for each altered proof (all signed with alice's valid key).
	t.Run("rejected without contacting STS", func(t *testing.T) {
		v, ct := motoVerifier(t, s)
		now := time.Now()
		cases := map[string]struct {
			p    *Proof
			exp  Expect
			kind Kind
		}{
			"digest of another run id": {signWith(t, s, alice, testAudience, digest, now), Expect{Audience: testAudience, Digest: Digest([]Field{{"kind", "run"}, {"run_id", "r-2"}, {"job", "web"}, {"param.env", "prod"}})}, KindBinding},
			"digest of another param":  {signWith(t, s, alice, testAudience, digest, now), Expect{Audience: testAudience, Digest: Digest([]Field{{"kind", "run"}, {"run_id", "r-1"}, {"job", "web"}, {"param.env", "dev"}})}, KindBinding},
			"another audience":         {signWith(t, s, alice, "arn:aws:sns:us-east-1:111122223333:other-broker", digest, now), exp, KindBinding},
			"stale X-Amz-Date":         {signWith(t, s, alice, testAudience, digest, now.Add(-16*time.Minute)), exp, KindStale},
			"past the request expiry":  {signWith(t, s, alice, testAudience, digest, now), Expect{Audience: testAudience, Digest: digest, NotAfter: now.Add(-time.Second)}, KindStale},
		}
		alter := func(name string, kind Kind, f func(*Proof)) {
			p := signWith(t, s, alice, testAudience, digest, now)
			f(p)
			cases[name] = struct {
				p    *Proof
				exp  Expect
				kind Kind
			}{p, exp, kind}
		}
		alter("host altered", KindHostNotAllowed, func(p *Proof) { p.URL = strings.Replace(p.URL, "127.0.0.1", "127.0.0.2", 1) })
		alter("host to real STS", KindHostNotAllowed, func(p *Proof) { p.URL = "https://sts.us-east-1.amazonaws.com/" })
		alter("action altered", KindMalformed, func(p *Proof) { p.Body = strings.Replace(p.Body, "GetCallerIdentity", "GetSessionToken", 1) })
		alter("body altered", KindMalformed, func(p *Proof) { p.Body += "&DurationSeconds=900" })
		alter("GET with query", KindHostNotAllowed, func(p *Proof) { p.URL += "?" + p.Body })
		for name, c := range cases {
			_, err := v.Verify(context.Background(), c.p, c.exp)
			if !errors.Is(err, &Error{Kind: c.kind}) {
				t.Errorf("%s: got %v, want %v", name, err, c.kind)
			}
		}
		if n := ct.n.Load(); n != 0 {
			t.Fatalf("STS contacted %d times", n)
		}
	})

	// What default moto does not check: a signed header edited after
	// signing (consistently, so our offline checks pass) is still answered
	// with alice's identity. This is the control for
	// TestMotoSignatureIsChecked, where moto checks signatures.
	t.Run("default moto ignores signatures", func(t *testing.T) {
		v, _ := motoVerifier(t, s)
		p := signWith(t, s, alice, testAudience, digest, time.Now())
		setHeader(p, HeaderAudience, "arn:aws:sns:us-east-1:111122223333:forged")
		if _, err := v.Verify(context.Background(), roundTrip(t, p), Expect{Audience: "arn:aws:sns:us-east-1:111122223333:forged", Digest: digest}); err != nil {
			t.Fatalf("default moto now checks signatures? %v", err)
		}
	})
}

// Property: the binding is cryptographic — STS itself refuses a proof whose
// signed audience, digest or date was changed after signing, even when the
// change is consistent with what the verifier expects (so every offline
// check passes). Shown on a dedicated moto whose request authentication is
// switched on after set-up: moto 5.2.1 (moto/core/authorization.py,
// moto/iam/access_control.py) recomputes the SigV4 signature of every
// request from the access key's secret once INITIAL_NO_AUTH_ACTION_COUNT
// requests have been served; POST /moto-api/reset-auth sets that count at
// run time (0 = authenticate from now on). moto checks the signature over
// the signed headers, path and body, and that the key exists; it does not
// check X-Amz-Date's age or session-token expiry.
func TestMotoSignatureIsChecked(t *testing.T) {
	s := startMoto(t)
	alice := createUser(t, s, "/ci/", "alice")
	resp, err := http.Post(s.URL+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reset-auth: HTTP %d", resp.StatusCode)
	}
	v, ct := motoVerifier(t, s)
	digest := Digest([]Field{{"run_id", "r-1"}})
	now := time.Now()

	// A genuine proof passes moto's signature check.
	if p, err := v.Verify(context.Background(), roundTrip(t, signWith(t, s, alice, testAudience, digest, now)), Expect{Audience: testAudience, Digest: digest}); err != nil || p.ARN != "arn:aws:iam::123456789012:user/ci/alice" {
		t.Fatalf("genuine proof: %+v %v", p, err)
	}
	// An unknown key is refused (authentication is really on).
	if _, err := v.Verify(context.Background(), signWith(t, s, aws.Credentials{AccessKeyID: "AKIAUNKNOWNKEY000000", SecretAccessKey: "x"}, testAudience, digest, now), Expect{Audience: testAudience, Digest: digest}); !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown key: %v", err)
	}
	other := Digest([]Field{{"run_id", "r-2"}})
	forged := "arn:aws:sns:us-east-1:111122223333:forged"
	for name, c := range map[string]struct {
		header, value string
		exp           Expect
	}{
		"audience changed after signing": {HeaderAudience, forged, Expect{Audience: forged, Digest: digest}},
		"digest changed after signing":   {HeaderDigest, DigestHex(other), Expect{Audience: testAudience, Digest: other}},
		"date changed after signing":     {"X-Amz-Date", now.Add(-time.Minute).UTC().Format("20060102T150405Z"), Expect{Audience: testAudience, Digest: digest}},
	} {
		p := signWith(t, s, alice, testAudience, digest, now)
		setHeader(p, c.header, c.value)
		p = roundTrip(t, p) // re-encoded, as an attacker would resend it
		if _, err := v.Check(p, c.exp); err != nil {
			t.Fatalf("%s: offline checks should pass, got %v", name, err)
		}
		before := ct.n.Load()
		_, err := v.Verify(context.Background(), p, c.exp)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
			t.Fatalf("%s: got %v, want STS to refuse the signature", name, err)
		}
		if ct.n.Load() != before+1 {
			t.Fatalf("%s: STS not contacted", name)
		}
	}
}
