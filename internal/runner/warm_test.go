package runner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

func warmAssignment(job string) protocol.Assignment {
	return protocol.Assignment{Slot: protocol.NewWarmSlotID(time.Now()), RunID: protocol.NewRunID(time.Now()),
		QueueURL: "http://127.0.0.1:1/123456789012/b-run.fifo", Job: job, Deadline: time.Now().Add(time.Hour),
		Heartbeat: "10s", Grace: "10s", Argv: []string{"/bin/echo", "hi"}}
}

// A warm runner takes one assignment from its inbox through the emulator's
// SQS, deletes it, and refuses one that is malformed or for another job:
// it does not run it (the task stops, which ends the run it may be).
func TestAwaitAssignment(t *testing.T) {
	_, cfg := mototest.Start(t)
	c := sqs.NewFromConfig(cfg)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	inbox := func(name, body string) string {
		q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(body)}); err != nil {
				t.Fatal(err)
			}
		}
		return aws.ToString(q.QueueUrl)
	}
	left := func(url string) int {
		out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
		b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
		return a + b
	}

	want := warmAssignment("steps")
	body, err := protocol.EncodeAssignment(want)
	if err != nil {
		t.Fatal(err)
	}
	url := inbox("b-warm-ok", string(body))
	got, err := AwaitAssignment(ctx, c, url, "steps", time.Minute, log)
	if err != nil || got.RunID != want.RunID || got.Argv[1] != "hi" {
		t.Fatalf("assignment %+v, %v", got, err)
	}
	if n := left(url); n != 0 {
		t.Errorf("the assignment was not deleted: %d messages left", n)
	}

	foreign, _ := protocol.EncodeAssignment(warmAssignment("website"))
	for name, c2 := range map[string]struct{ body, want string }{
		"foreign job": {string(foreign), `is for job "website", but this warm runner is job "steps"'s: refused`},
		"malformed":   {strings.Replace(string(body), `"v":1`, `"v":1,"role_arn":"arn:aws:iam::1:role/x"`, 1), `unknown field "role_arn"`},
		"not json":    {"run everything", "not a valid assignment"},
	} {
		url := inbox("b-warm-"+strings.ReplaceAll(name, " ", "-"), c2.body)
		a, err := AwaitAssignment(ctx, c, url, "steps", time.Minute, log)
		if err == nil || a != nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("%s: %+v, %v; want a refusal saying %q", name, a, err, c2.want)
		}
		if n := left(url); n != 0 {
			t.Errorf("%s: the refused message was left in the inbox (%d)", name, n)
		}
	}

	// No assignment within the idle limit: the runner gives up, to be replaced.
	if _, err := AwaitAssignment(ctx, c, inbox("b-warm-idle", ""), "steps", time.Second, log); !errors.Is(err, ErrWarmIdle) {
		t.Errorf("idle inbox: %v, want ErrWarmIdle", err)
	}
}
