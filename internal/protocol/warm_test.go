package protocol_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

const validAssignment = `{"v":1,"slot":"warm-01JD5Q3ZC8W2V9T6R4N1M7K0HX","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY","queue_url":"https://sqs.eu-west-1.amazonaws.com/111122223333/b-01JD5Q3ZC8W2V9T6R4N1M7K0HY.fifo","job":"website","deadline":"2026-11-22T10:30:00Z","heartbeat":"10s","grace":"10s","requester":"arn:aws:sts::111122223333:assumed-role/ci/s","redact":["TOKEN","DEPLOY_BROKER_PARAM_PASSWORD"],"secrets":{"password":"hunter2"},"argv":["/bin/deploy","--version","1.2.3"]}`

func TestDecodeAssignment(t *testing.T) {
	a, err := protocol.DecodeAssignment([]byte(validAssignment))
	if err != nil {
		t.Fatal(err)
	}
	env := a.Env()
	for _, want := range []string{"DEPLOY_BROKER_RUN_ID=01JD5Q3ZC8W2V9T6R4N1M7K0HY", "DEPLOY_BROKER_JOB=website",
		"DEPLOY_BROKER_DEADLINE=2026-11-22T10:30:00Z", "DEPLOY_BROKER_PARAM_PASSWORD=hunter2",
		"DEPLOY_BROKER_REDACT=TOKEN,DEPLOY_BROKER_PARAM_PASSWORD", "DEPLOY_BROKER_HEARTBEAT=10s"} {
		if !slices.Contains(env, want) {
			t.Errorf("Env() lacks %s: %v", want, env)
		}
	}
	b, err := protocol.EncodeAssignment(*a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.DecodeAssignment(b); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func TestDecodeAssignmentRefuses(t *testing.T) {
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		_ = json.Unmarshal([]byte(validAssignment), &m)
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"unknown field": {edit(func(m map[string]any) { m["role_arn"] = "x" }), `unknown field "role_arn"`},
		"key case":      {strings.Replace(validAssignment, `"job"`, `"JOB"`, 1), "not valid"},
		"repeated key":  {strings.Replace(validAssignment, `"job":"website"`, `"job":"website","job":"other"`, 1), "not valid"},
		"version":       {edit(func(m map[string]any) { m["v"] = 2 }), "version 2"},
		"slot":          {edit(func(m map[string]any) { m["slot"] = "01JD5Q3ZC8W2V9T6R4N1M7K0HX" }), "not a slot id"},
		"run id":        {edit(func(m map[string]any) { m["run_id"] = "x" }), "ULID"},
		"job":           {edit(func(m map[string]any) { m["job"] = "Web Site" }), "not a job name"},
		"no argv":       {edit(func(m map[string]any) { m["argv"] = []string{} }), "no command"},
		"queue url":     {edit(func(m map[string]any) { m["queue_url"] = "file:///etc/passwd" }), "not an http(s) URL"},
		"heartbeat":     {edit(func(m map[string]any) { m["heartbeat"] = "soon" }), "not a duration"},
		"secret name":   {edit(func(m map[string]any) { m["secrets"] = map[string]string{"Bad-Name": "x"} }), "not valid"},
		"redact name":   {edit(func(m map[string]any) { m["redact"] = []string{"A=B"} }), "not a variable name"},
		"no deadline":   {edit(func(m map[string]any) { delete(m, "deadline") }), "no deadline"},
		"control":       {edit(func(m map[string]any) { m["requester"] = "a\nb" }), "control character"},
		"trailing data": {validAssignment + "{}", "after the JSON object"},
		"not json":      {"slot=1", "malformed JSON"},
		"array":         {"[" + validAssignment + "]", "must be an object"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := protocol.DecodeAssignment([]byte(tc.body))
			if err == nil || a != nil {
				t.Fatalf("accepted %s", tc.body)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
	big := edit(func(m map[string]any) {
		m["argv"] = []string{"/bin/x", strings.Repeat("a", protocol.MaxAssignmentBytes)}
	})
	if _, err := protocol.DecodeAssignment([]byte(big)); !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("oversized assignment: %v", err)
	}
}

func TestWarmNames(t *testing.T) {
	id := protocol.NewWarmSlotID(time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC))
	if !protocol.ValidWarmSlotID(id) || protocol.ValidateRunID(id) == nil || len(id) > 64 {
		t.Fatalf("slot id %q: valid %v, a run id %v, %d characters", id, protocol.ValidWarmSlotID(id), protocol.ValidateRunID(id) == nil, len(id))
	}
	name := protocol.InboxName("deploy-broker", id)
	if !protocol.IsInboxName("deploy-broker", name) || protocol.IsInboxName("other", name) || strings.HasSuffix(name, ".fifo") {
		t.Fatalf("inbox name %q", name)
	}
	if protocol.IsInboxName("deploy-broker", protocol.QueueName("deploy-broker", "01JD5Q3ZC8W2V9T6R4N1M7K0HX")) {
		t.Fatal("a run queue reads as an inbox")
	}
	if tm, err := protocol.WarmSlotTime(id); err != nil || !tm.Equal(time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)) {
		t.Fatalf("slot time %v %v", tm, err)
	}
}

func TestAcceptedStart(t *testing.T) {
	body := `{"v":1,"records":[{"type":"accepted","src":"dispatcher","seq":1,"t":"2026-11-22T10:00:00Z","accepted":{"job":"a","task_arn":"t","account":"111122223333","start":"lukewarm"}}]}`
	if _, err := protocol.DecodeMessage([]byte(body)); err == nil || !strings.Contains(err.Error(), "warm or cold") {
		t.Fatalf("accepted an unknown start: %v", err)
	}
	// Without warm runners the record is exactly as before (no start field).
	b, _ := protocol.EncodeMessage([]protocol.Record{{Type: protocol.TypeAccepted, Src: protocol.SourceDispatcher, Seq: 1, Time: time.Unix(1, 0),
		Accepted: &protocol.Accepted{Job: "a", TaskARN: "t", Account: "111122223333"}}})
	if strings.Contains(string(b), "start") || strings.Contains(string(b), "warm") {
		t.Fatalf("a cold job's accepted record carries warm fields: %s", b)
	}
}

// FuzzDecodeAssignment: the assignment decoder never panics, and what it
// accepts encodes and decodes again to the same run.
func FuzzDecodeAssignment(f *testing.F) {
	f.Add([]byte(validAssignment))
	f.Add([]byte(`{"v":1,"slot":"warm-x","RUN_ID":"y"}`))
	f.Add([]byte(strings.Replace(validAssignment, `"secrets":{"password":"hunter2"}`, `"secrets":{"p\u0061ss":"x"}`, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := protocol.DecodeAssignment(b)
		if err != nil {
			if a != nil {
				t.Fatal("a refused assignment came back non-nil")
			}
			return
		}
		again, err := protocol.EncodeAssignment(*a)
		if err != nil {
			t.Fatalf("accepted assignment does not encode: %v", err)
		}
		a2, err := protocol.DecodeAssignment(again)
		if err != nil {
			t.Fatalf("accepted assignment does not decode after encoding: %v\n%s", err, again)
		}
		if a2.RunID != a.RunID || a2.Job != a.Job || a2.Slot != a.Slot || !slices.Equal(a2.Argv, a.Argv) || !slices.Equal(a2.Env(), a.Env()) {
			t.Fatalf("round trip changed the assignment: %+v -> %+v", a, a2)
		}
	})
}
