package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SignInput is what the trigger needs to produce a proof.
type SignInput struct {
	// Credentials of the caller; only used to sign, never copied into the
	// proof (apart from the access key id in Authorization and, for
	// temporary credentials, the session token).
	Credentials aws.CredentialsProvider
	// Region of the broker (its regional STS endpoint is signed for).
	Region string
	// Partition: aws, aws-cn or aws-us-gov. Must match the verifier's.
	Partition string
	// Audience is the broker's topic ARN.
	Audience string
	// Digest of the canonical request (see Digest).
	Digest [32]byte
	// Endpoint overrides the STS URL, for local mode and tests only (e.g.
	// http://127.0.0.1:PORT). It must equal the verifier's Endpoint.
	Endpoint string
	// Now is the signing time; zero means time.Now().
	Now time.Time
}

// Sign builds the sts:GetCallerIdentity POST request with the audience and
// digest headers, signs it with SigV4 (both headers, content-type, host and
// x-amz-date are in SignedHeaders), and returns it as a Proof. Nothing is
// sent.
func Sign(ctx context.Context, in SignInput) (*Proof, error) {
	if in.Credentials == nil {
		return nil, errors.New("identity: no credentials provider")
	}
	if in.Audience == "" {
		return nil, errors.New("identity: empty audience")
	}
	if err := checkHeaderValue(in.Audience); err != nil {
		return nil, fmt.Errorf("identity: audience: %w", err)
	}
	endpoint, scopeRegion, err := signEndpoint(in.Partition, in.Region, in.Endpoint)
	if err != nil {
		return nil, err
	}
	creds, err := in.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("identity: retrieving credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, Method, endpoint, strings.NewReader(Body))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set(HeaderAudience, in.Audience)
	req.Header.Set(HeaderDigest, DigestHex(in.Digest))
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	sum := sha256.Sum256([]byte(Body))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sts", scopeRegion, now.UTC()); err != nil {
		return nil, fmt.Errorf("identity: signing: %w", err)
	}
	p := &Proof{V: ProofVersion, Method: Method, URL: endpoint, Body: Body}
	for _, lower := range []string{"authorization", "content-type", "x-amz-date", "x-amz-security-token", "x-deploy-broker-audience", "x-deploy-broker-request-sha256"} {
		name := canonicalName[lower]
		if v := req.Header.Get(name); v != "" {
			p.Headers = append(p.Headers, Header{Name: name, Value: v})
		}
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$`)

// dnsSuffix of each supported partition.
var dnsSuffix = map[string]string{
	"aws":        "amazonaws.com",
	"aws-cn":     "amazonaws.com.cn",
	"aws-us-gov": "amazonaws.com",
}

// regionalURL is the canonical proof URL for partition and region.
func regionalURL(partition, region string) (string, error) {
	suffix, ok := dnsSuffix[partition]
	if !ok {
		return "", fmt.Errorf("identity: unsupported partition %q", partition)
	}
	if !regionRE.MatchString(region) {
		return "", fmt.Errorf("identity: invalid region %q", region)
	}
	if partition == "aws-cn" && !strings.HasPrefix(region, "cn-") ||
		partition == "aws-us-gov" && !strings.HasPrefix(region, "us-gov-") ||
		partition == "aws" && (strings.HasPrefix(region, "cn-") || strings.HasPrefix(region, "us-gov-")) {
		return "", fmt.Errorf("identity: region %q is not in partition %q", region, partition)
	}
	return "https://sts." + region + "." + suffix + "/", nil
}

func signEndpoint(partition, region, override string) (endpoint, scopeRegion string, err error) {
	if _, err := regionalURL(partition, region); err != nil {
		return "", "", err
	}
	if override != "" {
		u, err := normaliseOverride(override)
		if err != nil {
			return "", "", err
		}
		return u, region, nil
	}
	u, _ := regionalURL(partition, region)
	return u, region, nil
}
