package reliability

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/faultproxy"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
	"github.com/deploy-broker/deploy-broker/internal/testkit/prooftest"
)

// TestLostAnswersToTheDispatcher: the dispatcher's calls succeed but their
// answers are lost, and the SDK retries them. The claim's retry finds its
// own claim token (not a second delivery), CreateQueue and SendMessage are
// idempotent: the run is accepted at once, with one task and one accepted
// record.
func TestLostAnswersToTheDispatcher(t *testing.T) {
	srv, awsCfg := mototest.Start(t)
	lost := map[string]bool{"dynamodb.PutItem": true, "dynamodb.UpdateItem": true, "sqs.CreateQueue": true, "sqs.SendMessage": true}
	proxy, err := faultproxy.Start(srv.URL, faultproxy.Options{
		Plan: func(service, action string, nth int) faultproxy.Fault {
			if nth == 1 && lost[service+"."+action] {
				return faultproxy.DropResponse
			}
			return faultproxy.None
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	direct := awsCfg.Copy()
	awsCfg.BaseEndpoint = aws.String(proxy.URL)

	h := &harness{now: time.Now().UTC(), sts: srv.URL}
	h.id = prooftest.MustAssume(t, direct, "arn:aws:iam::111111111111:role/ci", "gha-org-app-1")
	d, cfg, res := newDispatcher(t, awsCfg, h, srv.URL)
	h.topic = res.TopicARN
	body := h.req(nil)
	var req protocol.Request
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns",
		SNS: events.SNSEntity{Type: "Notification", MessageID: "m1", TopicArn: res.TopicARN, Message: string(body), Timestamp: time.Now()}}}})
	start := time.Now()
	if _, err := lambda.NewHandler(d.Handle).Invoke(context.Background(), ev); err != nil {
		t.Fatalf("the handler failed: %v\n%s", err, h.audit())
	}
	took := time.Since(start)
	if !strings.Contains(h.audit(), `"decision":"accepted"`) {
		t.Fatalf("the run was not accepted in the first invocation:\n%s", h.audit())
	}
	out, err := ecs.NewFromConfig(direct).ListTasks(context.Background(), &ecs.ListTasksInput{Cluster: aws.String(res.ClusterARN), StartedBy: aws.String(req.RunID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.TaskArns) != 1 {
		t.Errorf("%d tasks, want 1", len(out.TaskArns))
	}
	st := proxy.Stats()
	if st.DropResponse != int64(len(lost)) {
		t.Errorf("the proxy dropped %d answers, want %d", st.DropResponse, len(lost))
	}
	_ = cfg
	t.Logf("RESULT scenario=lost_dispatcher_answers answers_lost=%d tasks=%d accepted_in_ms=%d", st.DropResponse, len(out.TaskArns), took.Milliseconds())
}
