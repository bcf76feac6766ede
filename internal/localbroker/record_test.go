package localbroker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The recorder names each call's principal from the access key of its
// SigV4 credential scope only: a named key, a session learnt from an
// AssumeRole answer, or "key:<id>" for a key nobody named.
func TestRecorderAttributesCallsByAccessKey(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "Action=AssumeRole") {
			io.WriteString(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIASESSION0000000001</AccessKeyId></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/job/run-1</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>`)
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer up.Close()
	rec := NewRecorder()
	rec.Name(dispatcherKey, "dispatcher")
	srv, url, err := rec.serve(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	send := func(key, service, target, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20261130/us-east-1/"+service+"/aws4_request, SignedHeaders=host, Signature=0")
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
			req.Header.Set("Content-Type", "application/x-amz-json-1.0") // as the SDKs send it
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	send(dispatcherKey, "sqs", "AmazonSQS.CreateQueue", `{"QueueName":"q.fifo","Attributes":{"FifoQueue":"true"}}`)
	send(taskKey(0), "sts", "", "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fjob&RoleSessionName=run-1")
	send("ASIASESSION0000000001", "sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"http://q/123456789012/q.fifo"}`)
	got := rec.Calls()
	want := []struct{ principal, op, param, value string }{
		{"dispatcher", "CreateQueue", "Attributes", `{"FifoQueue":"true"}`},
		{"key:" + taskKey(0), "AssumeRole", "RoleSessionName", "run-1"},
		{"arn:aws:sts::123456789012:assumed-role/job/run-1", "SendMessage", "QueueUrl", "http://q/123456789012/q.fifo"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d calls recorded, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Principal != w.principal || got[i].Operation != w.op || got[i].Params[w.param] != w.value {
			t.Errorf("call %d: %s %s %s=%q, want %s %s %s=%q", i, got[i].Principal, got[i].Operation, w.param, got[i].Params[w.param], w.principal, w.op, w.param, w.value)
		}
	}
}
