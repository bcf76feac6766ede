package localbroker

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// A real envelope as moto (and SNS) delivers it to a subscribed queue.
const envelope = `{"Type":"Notification","MessageId":"6f1c…","TopicArn":"arn:aws:sns:us-east-1:123456789012:deploy-broker","Message":"{\"v\":1}","Timestamp":"2026-11-23T00:00:00.000Z","SignatureVersion":"1","Signature":"EXAMPLE","SigningCertURL":"https://sns.us-east-1.amazonaws.com/x.pem","UnsubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}`

func TestLambdaSNSEventCarriesTheMessage(t *testing.T) {
	payload, err := lambdaSNSEvent([]byte(envelope), "arn:sub")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SNSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 1 || ev.Records[0].EventSource != "aws:sns" || ev.Records[0].SNS.Message != `{"v":1}` ||
		ev.Records[0].SNS.TopicArn != "arn:aws:sns:us-east-1:123456789012:deploy-broker" || ev.Records[0].EventSubscriptionArn != "arn:sub" {
		t.Fatalf("event %+v", ev)
	}
}

func TestLambdaSNSEventRefusesWhatIsNoNotification(t *testing.T) {
	for _, body := range []string{``, `[]`, `{"Type":"SubscriptionConfirmation"}`, `{"Type":1}`, string(make([]byte, maxEnvelopeBytes+1))} {
		if _, err := lambdaSNSEvent([]byte(body), ""); err == nil {
			t.Errorf("accepted %.40q", body)
		}
	}
}

// FuzzLambdaSNSEvent: whatever arrives on the loop's queue, the conversion
// either refuses it or yields an SNS event that carries the message intact.
func FuzzLambdaSNSEvent(f *testing.F) {
	f.Add([]byte(envelope))
	f.Add([]byte(`{"Type":"Notification","Message":"\u0000\ud800"}`))
	f.Add([]byte(`{"Type":"Notification","Timestamp":"not a time"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		payload, err := lambdaSNSEvent(body, "arn:sub")
		if err != nil {
			return
		}
		var env snsEnvelope
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("accepted an envelope that does not decode: %v", err)
		}
		var ev events.SNSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatalf("produced an event that does not decode: %v", err)
		}
		if len(ev.Records) != 1 || ev.Records[0].SNS.Message != env.Message {
			t.Fatalf("message changed: %q → %+v", env.Message, ev.Records)
		}
	})
}
