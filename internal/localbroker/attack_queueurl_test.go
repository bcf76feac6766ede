package localbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
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
	inbox, err := direct.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(protocol.InboxName("sig-broker", protocol.NewWarmSlotID(time.Now())))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: inbox.QueueUrl, MessageBody: aws.String(`{"secrets":{"token":"SECRET-OF-THE-NEXT-RUN"}}`)}); err != nil {
		t.Fatal(err)
	}
	runQ, err := direct.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(protocol.QueueName("sig-broker", protocol.NewRunID(time.Now()))),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
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
		req, _ := http.NewRequest(http.MethodPost, f.shim.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", target)
		if err := signWith(req, job, "sqs", string(body)); err != nil {
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
	refusal := func(code int, body string) bool {
		return code == http.StatusForbidden && strings.Contains(body, "AccessDenied") ||
			code == http.StatusBadRequest && strings.Contains(body, "cannot read as the emulator will")
	}
	for _, v := range []struct {
		what string
		url  any
	}{{"a number", 1}, {"a list", []string{*inbox.QueueUrl}}, {"an object", map[string]string{"u": "x"}}, {"a boolean", true}} {
		code, body := call(pathOf(*inbox.QueueUrl), "AmazonSQS.ReceiveMessage", map[string]any{"QueueUrl": v.url, "VisibilityTimeout": 0})
		if !refusal(code, body) || strings.Contains(body, "SECRET-OF-THE-NEXT-RUN") {
			t.Errorf("a job read a warm runner's inbox named by the path, QueueUrl %s: HTTP %d %s", v.what, code, clip(body))
		}
		code, body = call(pathOf(*runQ.QueueUrl), "AmazonSQS.SendMessage", map[string]any{"QueueUrl": v.url, "MessageBody": `{"v":1,"records":[]}`,
			"MessageGroupId": "g", "MessageDeduplicationId": "forged-" + v.what[2:3]})
		if !refusal(code, body) {
			t.Errorf("a job sent to a run queue named by the path, QueueUrl %s: HTTP %d %s", v.what, code, clip(body))
		}
	}
	got, err := direct.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: runQ.QueueUrl, MaxNumberOfMessages: 10})
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
	direct := sqs.NewFromConfig(f.direct())
	inbox, err := direct.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(protocol.InboxName("sig-broker", protocol.NewWarmSlotID(time.Now())))})
	if err != nil {
		t.Fatal(err)
	}
	harmless, err := direct.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("harmless")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: inbox.QueueUrl, MessageBody: aws.String(`{"secrets":{"token":"SECRET-OF-THE-NEXT-RUN"}}`)}); err != nil {
		t.Fatal(err)
	}
	body := "Action=ReceiveMessage&Version=2012-11-05&VisibilityTimeout=0&QueueUrl=" + url.QueryEscape(*harmless.QueueUrl)
	req, _ := http.NewRequest(http.MethodPost, f.shim.URL+"/?QueueUrl="+url.QueryEscape(*inbox.QueueUrl), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := signWith(req, job, "sqs", body); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if strings.Contains(string(b), "SECRET-OF-THE-NEXT-RUN") || res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusForbidden {
		t.Errorf("a job's receive naming the inbox in the URL and another queue in the body: HTTP %d %s, want a refusal", res.StatusCode, clip(string(b)))
	}
}
