package localbroker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// A warm runner's inbox at local mode's endpoint: a job's deployment
// session can do nothing on it (not even find it), nobody who calls
// through the endpoint may write an assignment (the dispatcher calls the
// emulator directly), and only a runner's task role may read it. moto
// evaluates no IAM: what is proven is local mode's mirror (inboxmirror.go)
// of the job guard's NeverTouchWarmInboxes and of the inbox policy's
// Denies (dispatcher.InboxPolicy, which iamcheck evaluates).
func TestEndpointDeniesTheInboxes(t *testing.T) {
	k := testKeyring()
	runnerCreds := aws.Credentials{AccessKeyID: "AKIALOCALTASKTEST001", SecretAccessKey: "runner-secret"}
	k.keys[runnerCreds.AccessKeyID] = endpointKey{secret: runnerCreds.SecretAccessKey, runner: true}
	f := newMirrorFixture(t, k)
	ctx := context.Background()
	base := f.as(testCreds)
	job := f.job
	name := protocol.InboxName("sig-broker", protocol.NewWarmSlotID(time.Now()))
	inbox, err := sqs.NewFromConfig(base).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	as := func(c aws.Credentials) *sqs.Client { return sqs.NewFromConfig(f.as(c)) }
	send := func(c aws.Credentials) error {
		_, err := as(c).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: inbox.QueueUrl, MessageBody: aws.String(`{"v":1}`)})
		return err
	}
	receive := func(c aws.Credentials) error {
		_, err := as(c).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: inbox.QueueUrl, WaitTimeSeconds: 0})
		return err
	}
	denied := func(what string, err error, sid string) {
		t.Helper()
		if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), sid) {
			t.Errorf("%s: %v, want AccessDenied (%s)", what, err, sid)
		}
	}
	denied("a job session sending to an inbox", send(job), "NeverTouchWarmInboxes")
	denied("a job session receiving from an inbox", receive(job), "NeverTouchWarmInboxes")
	_, err = as(job).GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	denied("a job session looking up an inbox", err, "NeverTouchWarmInboxes")
	_, err = as(job).DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: inbox.QueueUrl})
	denied("a job session deleting an inbox", err, "NeverTouchWarmInboxes")
	denied("another principal sending an assignment", send(testCreds), "OnlyDispatcherWritesInbox")
	denied("a runner sending an assignment", send(runnerCreds), "OnlyDispatcherWritesInbox")
	denied("another principal reading an inbox", receive(testCreds), "OnlyRunnersReadInbox")
	if err := receive(runnerCreds); err != nil {
		t.Errorf("a runner reading an inbox: %v", err)
	}
	// Other queues are not inboxes.
	other, err := sqs.NewFromConfig(base).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("sig-broker-warmth")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as(job).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: other.QueueUrl, MessageBody: aws.String("x")}); err != nil {
		t.Errorf("a job session sending to a queue that is no inbox: %v", err)
	}
}
