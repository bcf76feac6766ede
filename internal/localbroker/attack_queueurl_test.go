package localbroker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/moto"
)

// Security review (warm runners and spare queues, second pass): the mirror
// names the queue of an SQS request by its QueueUrl parameter, and by the
// URL's path only when QueueUrl is empty. moto (sqs/responses.py
// _get_queue_name) takes the queue from QueueUrl only when it is a string
// starting with http:// or https:// (else the string itself), and falls
// back to the URL's path when QueueUrl is not a string at all (a JSON
// number, list, object or boolean: AttributeError). A job that signs its own
// request sends {"QueueUrl": 1} to the path of a warm runner's inbox or of a
// run queue: the mirror saw the queue "1", moto the path's. What is proven:
// local mode's mirror against moto's reading, not AWS (AWS's JSON protocol
// refuses a QueueUrl that is not a string, and IAM evaluates the real
// resource).
func TestAttackJobNamesTheQueueByThePathOnly(t *testing.T) {
	k := testKeyring()
	f := newMirrorFixture(t, k)
	ctx := context.Background()
	job := f.job

	direct := sqs.NewFromConfig(f.direct())
	inbox, runQ := f.inboxWithSecret(t), f.runQueue(t)
	pathOf := func(u string) string {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Path
	}
	call := func(path, target string, payload map[string]any) (int, string) {
		t.Helper()
		body, _ := json.Marshal(payload)
		return f.post(t, job, "sqs", moto.Region, path, "application/x-amz-json-1.0", target, string(body))
	}
	for _, v := range []struct {
		what string
		url  any
	}{{"a number", 1}, {"a list", []string{inbox}}, {"an object", map[string]string{"u": "x"}}, {"a boolean", true}} {
		code, body := call(pathOf(inbox), "AmazonSQS.ReceiveMessage", map[string]any{"QueueUrl": v.url, "VisibilityTimeout": 0})
		if !mirrorRefused(code, body) || strings.Contains(body, nextRunSecret) {
			t.Errorf("a job read a warm runner's inbox named by the path, QueueUrl %s: HTTP %d %s", v.what, code, clip(body))
		}
		code, body = call(pathOf(runQ), "AmazonSQS.SendMessage", map[string]any{"QueueUrl": v.url, "MessageBody": `{"v":1,"records":[]}`,
			"MessageGroupId": "g", "MessageDeduplicationId": "forged-" + v.what[2:3]})
		if !mirrorRefused(code, body) {
			t.Errorf("a job sent to a run queue named by the path, QueueUrl %s: HTTP %d %s", v.what, code, clip(body))
		}
	}
	got, err := direct.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(runQ), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 0 {
		t.Errorf("the run queue holds %d records a job forged", len(got.Messages))
	}
}

// The same mirror, the query protocol: moto merges a form body's
// parameters with the URL's query and reads the URL's value of a parameter
// given in both; the endpoint read the body's. A job sent its receive with
// the inbox's QueueUrl in the URL and a harmless queue's in the body, and
// read the next run's assignment (the mirror judged the harmless queue).
func TestAttackJobGivesTheQueueInTheURLAndTheBody(t *testing.T) {
	k := testKeyring()
	f := newMirrorFixture(t, k)
	ctx := context.Background()
	job := f.job
	inbox := f.inboxWithSecret(t)
	harmless, err := sqs.NewFromConfig(f.direct()).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("harmless")})
	if err != nil {
		t.Fatal(err)
	}
	body := "Action=ReceiveMessage&Version=2012-11-05&VisibilityTimeout=0&QueueUrl=" + url.QueryEscape(*harmless.QueueUrl)
	code, b := f.post(t, job, "sqs", moto.Region, "/?QueueUrl="+url.QueryEscape(inbox), "application/x-www-form-urlencoded", "", body)
	if strings.Contains(b, nextRunSecret) || code != http.StatusBadRequest && code != http.StatusForbidden {
		t.Errorf("a job's receive naming the inbox in the URL and another queue in the body: HTTP %d %s, want a refusal", code, clip(b))
	}
}
