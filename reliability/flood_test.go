package reliability

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/e2etest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/faultproxy"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
)

// TestFloodFromOnePrincipalDoesNotHoldUpAnother: a trusted principal
// (sessions of role flooder) publishes 30 run requests of a job that runs
// until stopped, then local mode's deploy-trigger (role ci) runs website,
// its request behind the whole flood.
// The broker allows 3 open runs per principal: the flooder gets 3 tasks and
// 27 throttled rejections; the other principal's run is accepted and ends
// 0 whatever the flood. When the flooder's tasks are stopped, their slots
// come back and it may run again.
func TestFloodFromOnePrincipalDoesNotHoldUpAnother(t *testing.T) {
	const flood, limit = 30, 3
	// The broker's clients reach moto through the proxy with no faults: it
	// applies DynamoDB's conditional writes one at a time, as DynamoDB does
	// and moto does not (see faultproxy), and the SNS loop delivers the
	// flood concurrently.
	b, _ := e2etest.StartBrokerBehindProxy(t, bins, "testdata/flood.yaml", localbroker.Options{}, faultproxy.Options{})
	ctx := context.Background()
	awsCfg, err := b.Server.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flooders := []prooftest.Identity{
		prooftest.MustAssume(t, awsCfg, "arn:aws:iam::111111111111:role/flooder", "flood-1"),
		prooftest.MustAssume(t, awsCfg, "arn:aws:iam::111111111111:role/flooder", "flood-2"),
	}
	// Made at the emulator directly: local mode's endpoint, which the
	// dispatcher replays their proofs to, is told their keys.
	for _, f := range flooders {
		c, err := f.Creds.Retrieve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.Trust(c)
	}
	snsc, db, ecsc := sns.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), ecs.NewFromConfig(awsCfg)
	publish := func(i int, job string, params map[string]string) string {
		now := time.Now().UTC()
		req := &protocol.Request{V: protocol.RequestVersion, Kind: protocol.KindRun, RunID: protocol.NewRunID(now), Job: job, Params: params,
			RequestedAt: now, ExpiresAt: now.Add(5 * time.Minute), Requester: &protocol.Requester{CI: "local", Actor: "flooder"}}
		if err := prooftest.Sign(req, flooders[i%2], b.TopicARN(), b.STSEndpoint(), now); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(req)
		if _, err := snsc.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(b.TopicARN()), Message: aws.String(string(raw))}); err != nil {
			t.Fatal(err)
		}
		return req.RunID
	}
	item := func(runID string) map[string]string {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(b.Resources.LedgerTable),
			Key: map[string]dbtypes.AttributeValue{ledger.AttrRunID: &dbtypes.AttributeValueMemberS{Value: runID}}, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for k, v := range out.Item {
			if s, ok := v.(*dbtypes.AttributeValueMemberS); ok {
				m[k] = s.Value
			}
		}
		return m
	}

	// The flood is published first; the other principal's request comes
	// after all of it.
	var ids []string
	for i := range flood {
		ids = append(ids, publish(i, "sleeper", nil))
	}
	other := e2etest.Trigger{Bins: bins}.Run(t, b, "website", "version=1.0.0")
	if other.Code != 0 {
		t.Fatalf("the other principal's run during the flood: exit %d\n%s", other.Code, e2etest.Tail(other.Stderr, 10))
	}

	// Every flood request is decided: accepted or throttled.
	var accepted, throttled []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		accepted, throttled = nil, nil
		for _, id := range ids {
			it := item(id)
			switch {
			case it[ledger.AttrNotifiedAt] == "":
			case it[ledger.AttrRejectCode] == protocol.RejectThrottled:
				throttled = append(throttled, id)
			case it[ledger.AttrTaskARN] != "":
				accepted = append(accepted, id)
			default:
				t.Fatalf("flood run %s: %v", id, it)
			}
		}
		if len(accepted)+len(throttled) == flood || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(accepted) != limit || len(throttled) != flood-limit {
		t.Fatalf("flood: %d accepted, %d throttled, want %d and %d", len(accepted), len(throttled), limit, flood-limit)
	}
	t.Logf("RESULT scenario=flood flood_requests=%d flood_accepted=%d flood_throttled=%d other_principal_exit=%d other_principal_elapsed=%.1fs",
		flood, len(accepted), len(throttled), other.Code, other.Elapsed.Seconds())

	// The flooder's runs end (stopped): their slots come back.
	for _, id := range accepted {
		if _, err := ecsc.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(b.Resources.ClusterARN), Task: aws.String(item(id)[ledger.AttrTaskARN])}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range accepted {
		for end := time.Now().Add(30 * time.Second); item(id)[ledger.AttrEndedAt] == ""; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("flood run %s never ended after StopTask: %v", id, item(id))
			}
		}
	}
	again := publish(0, "website", map[string]string{"version": "1.0.1"})
	for end := time.Now().Add(30 * time.Second); item(again)[ledger.AttrNotifiedAt] == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the flooder's run after its runs ended was never answered: %v", item(again))
		}
	}
	if it := item(again); it[ledger.AttrTaskARN] == "" {
		t.Fatalf("the flooder's run after its runs ended: %v, want a task (no slot leaked)", it)
	}
}
