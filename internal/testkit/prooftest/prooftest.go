// Package prooftest gives tests distinct, verifiable identities in moto and
// signs broker requests with them: sts:AssumeRole of a role ARN in moto
// returns credentials that moto's GetCallerIdentity maps to that role in
// that role's account (the role need not exist), so each test principal is
// a real assumed-role session as far as the dispatcher's verifier can tell.
package prooftest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Identity is a principal's credentials in moto.
type Identity struct {
	ARN   string // as GetCallerIdentity reports it
	Creds aws.CredentialsProvider
}

// AssumeRole assumes roleARN (any account) as session in the moto that
// awsCfg points at.
func AssumeRole(ctx context.Context, awsCfg aws.Config, roleARN, session string) (Identity, error) {
	out, err := sts.NewFromConfig(awsCfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String(session)})
	if err != nil {
		return Identity{}, fmt.Errorf("assuming %s in moto: %w", roleARN, err)
	}
	c := out.Credentials
	prov := credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	return Identity{ARN: aws.ToString(out.AssumedRoleUser.Arn), Creds: prov}, nil
}

// MustAssume is AssumeRole for tests.
func MustAssume(t interface {
	Helper()
	Fatal(...any)
}, awsCfg aws.Config, roleARN, session string) Identity {
	t.Helper()
	id, err := AssumeRole(context.Background(), awsCfg, roleARN, session)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Sign sets req.Proof for the broker topic, signed by id at now, for the
// STS endpoint endpoint (moto's URL).
func Sign(req *protocol.Request, id Identity, topic, endpoint string, now time.Time) error {
	return identity.RequestSigner{Credentials: id.Creds, Topic: topic, Endpoint: endpoint,
		Now: func() time.Time { return now }}.Sign(context.Background(), req)
}

// motoQuery sends a SigV4-signed query-protocol POST to moto (IAM and the
// moto API have no client in go.mod; a signed form is all they need).
func motoQuery(motoURL string, creds aws.Credentials, service string, params url.Values) (string, error) {
	body := params.Encode()
	req, err := http.NewRequest("POST", motoURL+"/", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, moto.Region, time.Now()); err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s %s: HTTP %d %s", service, params.Get("Action"), resp.StatusCode, b)
	}
	return string(b), nil
}

func xmlField(doc, name string) string {
	m := regexp.MustCompile("<" + name + ">([^<]+)</" + name + ">").FindStringSubmatch(doc)
	if m == nil {
		return ""
	}
	return m[1]
}

// MustCreateUser makes an IAM user with an access key in moto's own
// account (before moto's authentication is switched on).
func MustCreateUser(t interface {
	Helper()
	Fatal(...any)
}, motoURL, name string) Identity {
	t.Helper()
	admin := aws.Credentials{AccessKeyID: moto.AccessKeyID, SecretAccessKey: "test"}
	doc, err := motoQuery(motoURL, admin, "iam", url.Values{"Action": {"CreateUser"}, "Version": {"2010-05-08"}, "UserName": {name}})
	if err != nil {
		t.Fatal(err)
	}
	arn := xmlField(doc, "Arn")
	doc, err = motoQuery(motoURL, admin, "iam", url.Values{"Action": {"CreateAccessKey"}, "Version": {"2010-05-08"}, "UserName": {name}})
	if err != nil {
		t.Fatal(err)
	}
	return Identity{ARN: arn, Creds: credentials.NewStaticCredentialsProvider(xmlField(doc, "AccessKeyId"), xmlField(doc, "SecretAccessKey"), "")}
}

// EnableMotoAuth switches on moto's request authentication: from then on
// moto checks every request's SigV4 signature (and IAM permissions) against
// the users it knows, for every service. Use a moto of your own.
func EnableMotoAuth(motoURL string) error {
	resp, err := http.Post(motoURL+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("moto reset-auth: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Rebind returns an encoded proof with its request-digest header replaced
// by digestHex, after signing: what an attacker would do to move a proof
// onto another request.
func Rebind(t interface {
	Helper()
	Fatal(...any)
}, proof []byte, digestHex string) []byte {
	t.Helper()
	p, err := identity.DecodeProof(proof)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range p.Headers {
		if h.Name == identity.HeaderDigest {
			p.Headers[i].Value = digestHex
		}
	}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
