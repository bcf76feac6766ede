package localbroker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/testutil"
)

// The live security review's attack (issue 24): the CI identity's access
// key id with a wrong secret and a garbage session token was accepted as
// the CI principal, because moto checks no signature and the broker's
// proof of identity is a signed GetCallerIdentity moto answered. Now the
// local endpoint refuses the direct call, and the proof the dispatcher
// replays to it, so the run is refused as unverified; the same request
// signed with the right secret is accepted (so the refusal is the
// signature's).
func TestWrongSecretIsRefusedDirectlyAndAsProof(t *testing.T) {
	ctx := context.Background()
	var logs testutil.SyncBuffer
	b, err := Start(ctx, Options{ConfigPath: "../../examples/broker.yaml", RunnerPath: "/bin/true", SweepInterval: -1, Log: &logs,
		FailToStart: map[string]string{"website": "CannotPullContainerError: not needed by this test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Identity == nil {
		t.Fatal("local mode made no identity")
	}
	forged := aws.Credentials{AccessKeyID: b.Identity.Creds.AccessKeyID, SecretAccessKey: "wrong-secret", SessionToken: "garbage"}
	_, err = sts.NewFromConfig(shimClientConfig(b.STSEndpoint(), forged)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if apiCode(err) != "InvalidClientTokenId" {
		t.Errorf("GetCallerIdentity with the CI key id, a wrong secret and a garbage token: %v, want InvalidClientTokenId", err)
	}
	wrongSecret := aws.Credentials{AccessKeyID: b.Identity.Creds.AccessKeyID, SecretAccessKey: "wrong-secret", SessionToken: b.Identity.Creds.SessionToken}
	_, err = sns.NewFromConfig(shimClientConfig(b.STSEndpoint(), wrongSecret)).Publish(ctx, &sns.PublishInput{TopicArn: aws.String(b.TopicARN()), Message: aws.String("{}")})
	if apiCode(err) != "SignatureDoesNotMatch" {
		t.Errorf("Publish with the CI key id and token but a wrong secret: %v, want SignatureDoesNotMatch", err)
	}

	// The proof: published past deploy-trigger (straight to the emulator,
	// as a hostile client would), signed with forged, and with the right
	// credentials.
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(c aws.Credentials) string {
		now := time.Now().UTC().Truncate(time.Millisecond)
		req := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: "website",
			Params: map[string]string{"version": "1.4.2"}, RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute),
			Requester: &protocol.Requester{CI: "local"}}
		if err := (identity.RequestSigner{Credentials: credentials.StaticCredentialsProvider{Value: c},
			Topic: b.TopicARN(), Endpoint: b.STSEndpoint()}).Sign(ctx, req); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(req)
		if _, err := sns.NewFromConfig(awsCfg).Publish(ctx, &sns.PublishInput{TopicArn: aws.String(b.TopicARN()), Message: aws.String(string(body))}); err != nil {
			t.Fatal(err)
		}
		return req.RunID
	}
	decision := func(runID string) string {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) { // polling the log, not ordering
			for _, l := range strings.Split(logs.String(), "\n") {
				var e struct{ Audit, Decision, RunID, Reason string }
				if json.Unmarshal([]byte(l), &e) == nil && e.Audit == "decision" && strings.Contains(l, `"run_id":"`+runID+`"`) {
					return e.Decision + ": " + e.Reason
				}
			}
		}
		t.Fatalf("no decision on run %s within 30s", runID)
		return ""
	}
	if d := decision(publish(forged)); !strings.HasPrefix(d, "refused: proof of identity refused") || !strings.Contains(d, "SignatureDoesNotMatch") && !strings.Contains(d, "InvalidClientTokenId") {
		t.Errorf("a proof signed with a wrong secret and a garbage token: %s, want refused as unverified", d)
	}
	if d := decision(publish(b.Identity.Creds)); strings.HasPrefix(d, "refused") {
		t.Errorf("a proof signed with the right credentials: %s", d)
	}
}
