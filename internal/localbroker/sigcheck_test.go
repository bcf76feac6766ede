package localbroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// testCreds is the key testKeyring knows (moto's default key, so that the
// emulator serves it from its default account).
var testCreds = aws.Credentials{AccessKeyID: moto.AccessKeyID, SecretAccessKey: "right-secret"}

func testKeyring() *keyring {
	k := newKeyring("123456789012", "sig-broker")
	k.add(testCreds, false)
	return k
}

// signTest signs req for service with testCreds, as an SDK does.
func signTest(t *testing.T, req *http.Request, service, body string) {
	t.Helper()
	if err := signWith(req, testCreds, service, body); err != nil {
		t.Fatal(err)
	}
}

// shimClientConfig is an SDK configuration for the shim with creds.
func shimClientConfig(url string, c aws.Credentials) aws.Config {
	return aws.Config{Region: moto.Region, BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.StaticCredentialsProvider{Value: c}}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// The live review's attack (issue 24): with a known access key id but a
// wrong secret, or a garbage session token, moto answered as if signed. At
// local mode's endpoint each is refused, in the error the SDK names, as is
// an unknown key; the right secret is served. Against the real emulator.
func TestEndpointVerifiesSignatures(t *testing.T) {
	srv, _ := mototest.Start(t)
	shim, err := startAccountShim(srv.URL, "123456789012", testKeyring())
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	ctx := context.Background()
	who := func(c aws.Credentials) error {
		_, err := sts.NewFromConfig(shimClientConfig(shim.URL, c)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}
	if err := who(testCreds); err != nil {
		t.Fatalf("right secret: %v", err)
	}
	for _, c := range []struct {
		name  string
		creds aws.Credentials
		want  string
	}{
		{"wrong secret", aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: "wrong"}, "SignatureDoesNotMatch"},
		{"garbage token", aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: testCreds.SecretAccessKey, SessionToken: "garbage"}, "InvalidClientTokenId"},
		{"unknown key", aws.Credentials{AccessKeyID: "AKIAUNKNOWN000000000", SecretAccessKey: "x"}, "InvalidClientTokenId"},
	} {
		if code := apiCode(who(c.creds)); code != c.want {
			t.Errorf("%s: error code %q, want %s", c.name, code, c.want)
		}
	}
	// A JSON-protocol service surfaces the same.
	_, err = sqs.NewFromConfig(shimClientConfig(shim.URL, aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: "wrong"})).
		ListQueues(ctx, &sqs.ListQueuesInput{})
	if code := apiCode(err); code != "SignatureDoesNotMatch" {
		t.Errorf("SQS with a wrong secret: %v, want SignatureDoesNotMatch", err)
	}

	// The proof of identity, replayed to the endpoint as the dispatcher
	// does (identity.Verifier posts the signed request): the right secret
	// verifies, a wrong one is refused.
	proof := func(c aws.Credentials) int {
		p, err := identity.Sign(ctx, identity.SignInput{Credentials: credentials.StaticCredentialsProvider{Value: c},
			Region: moto.Region, Partition: "aws", Audience: "arn:aws:sns:us-east-1:123456789012:t", Endpoint: shim.URL})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(p.Method, p.URL, strings.NewReader(p.Body))
		for _, h := range p.Headers {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := proof(testCreds); code != http.StatusOK {
		t.Errorf("proof with the right secret: HTTP %d", code)
	}
	if code := proof(aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: "wrong", SessionToken: "garbage"}); code != http.StatusForbidden {
		t.Errorf("proof with a wrong secret and a garbage token: HTTP %d, want 403", code)
	}
}

// Sessions assumed through the endpoint are learnt (their secret and token
// verify), and a job's deployment session is refused the run queues
// (AccessDenied naming the statements AWS denies with) but not other
// queues. moto evaluates no IAM: what is proven is local mode's mirror of
// the deployment role's broker-guard Denies and the run queue policy's
// (runQueueDenies), not AWS's evaluation (iamcheck judges the policies).
func TestEndpointDeniesJobSessionsTheRunQueues(t *testing.T) {
	srv, _ := mototest.Start(t)
	shim, err := startAccountShim(srv.URL, "123456789012", testKeyring())
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	ctx := context.Background()
	base := shimClientConfig(shim.URL, testCreds)
	assume := func(role string) aws.Credentials {
		out, err := sts.NewFromConfig(base).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("run-1")})
		if err != nil {
			t.Fatalf("assume %s: %v", role, err)
		}
		c := out.Credentials
		return aws.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken}
	}
	job := assume("arn:aws:iam::123456789012:role" + DeploymentRolePath + "sig-broker-deploy")
	other := assume("arn:aws:iam::123456789012:role/ci")
	runQ, err := sqs.NewFromConfig(base).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("sig-broker-run1.fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	ownQ, err := sqs.NewFromConfig(base).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("job-own")})
	if err != nil {
		t.Fatal(err)
	}
	send := func(c aws.Credentials, q *string) error {
		_, err := sqs.NewFromConfig(shimClientConfig(shim.URL, c)).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String("forged"), MessageGroupId: aws.String("g")})
		return err
	}
	err = send(job, runQ.QueueUrl)
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "NeverWriteToRunQueues") {
		t.Errorf("job session sending to a run queue: %v, want AccessDenied (NeverWriteToRunQueues)", err)
	}
	_, err = sqs.NewFromConfig(shimClientConfig(shim.URL, job)).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: runQ.QueueUrl})
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "NeverTamperWithRunQueues") {
		t.Errorf("job session receiving from a run queue: %v, want AccessDenied (NeverTamperWithRunQueues)", err)
	}
	// Nor may it create a queue under a run queue's name (one a run is
	// about to get): the guard's NeverTamperWithRunQueues covers
	// CreateQueue; a queue of its own name it may create.
	jobSQS := sqs.NewFromConfig(shimClientConfig(shim.URL, job))
	_, err = jobSQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("sig-broker-01JBBBBBBBBBBBBBBBBBBBBBBB.fifo"),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "NeverTamperWithRunQueues") {
		t.Errorf("job session creating a queue under a run queue's name: %v, want AccessDenied (NeverTamperWithRunQueues)", err)
	}
	if _, err := jobSQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("job-own-2")}); err != nil {
		t.Errorf("job session creating a queue of its own: %v", err)
	}
	// Role chaining does not launder the session: moto lets anyone assume
	// any role, AWS would not let the deployment role assume the CI's.
	chained := assumeWith(t, shim.URL, job, "arn:aws:iam::123456789012:role/ci")
	if err := send(chained, runQ.QueueUrl); apiCode(err) != "AccessDenied" {
		t.Errorf("a session assumed from a job's sending to a run queue: %v, want AccessDenied", err)
	}
	if err := send(job, ownQ.QueueUrl); err != nil {
		t.Errorf("job session sending to a queue of its own: %v", err)
	}
	if err := send(other, runQ.QueueUrl); err != nil {
		t.Errorf("another session sending to a run queue: %v (the mirror is for jobs' sessions only)", err)
	}
	if err := send(aws.Credentials{AccessKeyID: job.AccessKeyID, SecretAccessKey: "wrong", SessionToken: job.SessionToken}, ownQ.QueueUrl); apiCode(err) != "SignatureDoesNotMatch" {
		t.Errorf("a learnt session with a wrong secret: %v, want SignatureDoesNotMatch", err)
	}

	// A run pointer forged by a job (issue 26) would point the run's
	// trigger at a queue of the job's making: the view table's policy
	// denies every write but the broker's, which local mode mirrors.
	db := dynamodb.NewFromConfig(base)
	view := brokerview.TableName("sig-broker")
	if _, err := db.CreateTable(ctx, brokerview.TableInput(view)); err != nil {
		t.Fatal(err)
	}
	forge := func(c aws.Credentials) error {
		return brokerview.PutRunPointer(ctx, dynamodb.NewFromConfig(shimClientConfig(shim.URL, c)), view, "01JAAAAAAAAAAAAAAAAAAAAAAA", *ownQ.QueueUrl, time.Now().Add(time.Hour))
	}
	if err := forge(job); apiCode(err) != "AccessDeniedException" || !strings.Contains(err.Error(), "OnlyTheBrokerWritesTheView") {
		t.Errorf("job session writing a run pointer: %v, want AccessDeniedException (OnlyTheBrokerWritesTheView)", err)
	}
	if err := forge(chained); apiCode(err) != "AccessDeniedException" {
		t.Errorf("a session assumed from a job's writing a run pointer: %v, want AccessDeniedException", err)
	}
	if err := forge(testCreds); err != nil {
		t.Errorf("the broker's own key writing a run pointer: %v", err)
	}
}

func assumeWith(t *testing.T, url string, c aws.Credentials, role string) aws.Credentials {
	t.Helper()
	out, err := sts.NewFromConfig(shimClientConfig(url, c)).AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("chained")})
	if err != nil {
		t.Fatalf("assume %s: %v", role, err)
	}
	k := out.Credentials
	return aws.Credentials{AccessKeyID: *k.AccessKeyId, SecretAccessKey: *k.SecretAccessKey, SessionToken: *k.SessionToken}
}

func signWith(req *http.Request, c aws.Credentials, service, body string) error {
	return signIn(req, c, service, moto.Region, body)
}

// signIn signs req with SigV4 for service in region, over body.
func signIn(req *http.Request, c aws.Credentials, service, region, body string) error {
	sum := sha256.Sum256([]byte(body))
	return v4.NewSigner().SignHTTP(context.Background(), c, req, hex.EncodeToString(sum[:]), service, region, time.Now())
}
