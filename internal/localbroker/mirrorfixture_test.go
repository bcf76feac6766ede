package localbroker

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/moto"
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
