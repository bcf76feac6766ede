package faultproxy

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// Through the proxy at a 30% fault rate, SDK retries plus FIFO deduplication
// deliver every message exactly once; and the proxy really injected faults.
func TestFaultsAreInjectedAndRetriesRecover(t *testing.T) {
	srv, cfg := mototest.Start(t)
	p, err := Start(srv.URL, Options{Rates: Spread(0.3), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	cfg.BaseEndpoint = aws.String(p.URL)
	client := sqs.NewFromConfig(cfg)

	p.SetEnabled(false)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fp.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	p.SetEnabled(true)
	const n = 100
	for i := 0; i < n; i++ {
		_, err := client.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: q.QueueUrl, MessageBody: aws.String(fmt.Sprint(i)),
			MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(fmt.Sprint(i)),
		})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	p.SetEnabled(false)
	got := 0
	for got < n {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if aws.ToString(m.Body) != fmt.Sprint(got) {
				t.Fatalf("message %d has body %q: lost, duplicated or reordered", got, aws.ToString(m.Body))
			}
			got++
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got != n {
		t.Fatalf("received %d of %d messages", got, n)
	}
	st := p.Stats()
	t.Logf("proxy stats: %+v", st)
	for name, c := range map[string]int64{"500": st.Error500, "503": st.Error503, "throttle": st.Throttle, "reset": st.Reset, "drop": st.DropResponse} {
		if c == 0 {
			t.Errorf("no %s fault was injected in %d requests", name, st.Requests)
		}
	}
}
