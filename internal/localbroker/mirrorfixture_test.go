package localbroker

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/moto"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// mirrorFixture is what the tests of local mode's IAM mirror share: a fresh
// emulator, the endpoint in front of it with a keyring, and a job's
// deployment session assumed through the endpoint (as the runner assumes
// it). The broker's own resources are made at the emulator directly, as
// the dispatcher makes them.
type mirrorFixture struct {
	srv  *moto.Server
	shim *accountShim
	job  aws.Credentials // the deployment session of sig-broker's job
}

// deploymentRole is the test keyring's job deployment role.
const deploymentRole = "arn:aws:iam::123456789012:role" + DeploymentRolePath + "sig-broker-deploy"

func newMirrorFixture(t *testing.T, k *keyring) mirrorFixture {
	t.Helper()
	srv, _ := mototest.Start(t)
	shim, err := startAccountShim(srv.URL, "123456789012", k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(shim.Close)
	return mirrorFixture{srv: srv, shim: shim, job: assumeWith(t, shim.URL, testCreds, deploymentRole)}
}

// direct is a client configuration for the emulator itself (the broker's
// components' view).
func (f mirrorFixture) direct() aws.Config { return shimClientConfig(f.srv.URL, testCreds) }

// as is a client configuration for the endpoint, signing with c.
func (f mirrorFixture) as(c aws.Credentials) aws.Config { return shimClientConfig(f.shim.URL, c) }

// post sends body to the endpoint at path as a job that signs its own
// requests would: signed by c for service in region, with content type ct
// and X-Amz-Target target ("" for none). It returns the answer's status and
// body.
func (f mirrorFixture) post(t *testing.T, c aws.Credentials, service, region, path, ct, target, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.shim.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	if err := signIn(req, c, service, region, body); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// mirrorRefused reports whether the endpoint refused a request: 403
// AccessDenied from the mirror, or 400 from its refusal of a request it
// cannot read as the emulator will (canonical.go).
func mirrorRefused(code int, body string) bool {
	return code == http.StatusForbidden && strings.Contains(body, "AccessDenied") ||
		code == http.StatusBadRequest && strings.Contains(body, "cannot read as the emulator will")
}

// nextRunSecret is the secret parameter of the assignment inboxWithSecret
// holds: a job must never read it.
const nextRunSecret = "SECRET-OF-THE-NEXT-RUN"

// inboxWithSecret makes a warm runner's inbox of sig-broker at the emulator
// holding an assignment with a secret, and returns its URL.
func (f mirrorFixture) inboxWithSecret(t *testing.T) string {
	t.Helper()
	c := sqs.NewFromConfig(f.direct())
	inbox, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(protocol.InboxName("sig-broker", protocol.NewWarmSlotID(time.Now())))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: inbox.QueueUrl, MessageBody: aws.String(`{"secrets":{"token":"` + nextRunSecret + `"}}`)}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(inbox.QueueUrl)
}

// runQueue makes a run queue of sig-broker at the emulator and returns its
// URL.
func (f mirrorFixture) runQueue(t *testing.T) string {
	t.Helper()
	q, err := sqs.NewFromConfig(f.direct()).CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName("sig-broker", protocol.NewRunID(time.Now()))),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(q.QueueUrl)
}
