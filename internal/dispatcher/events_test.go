package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// eventRecorder is an EventBridge client that keeps what it is given, or
// fails every call with err.
type eventRecorder struct {
	mu     sync.Mutex
	events []protocol.RunEvent
	raw    []string
	err    error
}

func (r *eventRecorder) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range in.Entries {
		if aws.ToString(e.Source) != protocol.EventSource || aws.ToString(e.DetailType) != protocol.EventDetailType || aws.ToString(e.EventBusName) != "default" {
			return nil, errors.New("unexpected entry " + aws.ToString(e.Source) + "/" + aws.ToString(e.DetailType) + " on " + aws.ToString(e.EventBusName))
		}
		var ev protocol.RunEvent
		if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &ev); err != nil {
			return nil, err
		}
		r.events = append(r.events, ev)
		r.raw = append(r.raw, aws.ToString(e.Detail))
	}
	return &eventbridge.PutEventsOutput{}, nil
}

func (r *eventRecorder) of(runID string) []protocol.RunEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []protocol.RunEvent
	for _, e := range r.events {
		if e.RunID == runID {
			out = append(out, e)
		}
	}
	return out
}

func withEvents(c dispatcher.EventsAPI) envOption {
	return func(_ *dispatcher.Settings, cl *dispatcher.Clients) { cl.Events = c }
}

func states(evs []protocol.RunEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.State)
	}
	return strings.Join(s, ",")
}

func TestLifecycleEventsOfARun(t *testing.T) {
	rec := &eventRecorder{}
	e := newEnv(t, withEvents(rec))
	r := e.request(func(r *protocol.Request) {
		r.Job, r.Params = "migrate", map[string]string{"steps": "3", "token": "s3cr3tT0ken"}
	})
	if err := e.run(r); err != nil {
		t.Fatal(err)
	}
	arn := e.tasks(r.RunID)[0]
	stopped := e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": arn, "StartedBy": r.RunID, "Version": 5})
	// The STOPPED event delivered twice announces the end once.
	for range 2 {
		if err := e.invoke(stopped); err != nil {
			t.Fatal(err)
		}
	}
	evs := rec.of(r.RunID)
	if got := states(evs); got != "requested,started,finished" {
		t.Fatalf("states %s, want requested,started,finished", got)
	}
	for _, ev := range evs {
		if ev.Job != "migrate" || !strings.HasPrefix(ev.Requester, "arn:aws:sts::111111111111:assumed-role/") || ev.ClaimedRequester != r.Requester.String() || ev.Account != e.res.AccountID || ev.AccountAlias != e.cfg.Broker.AccountAlias || ev.Region != e.res.Region || ev.Time == "" {
			t.Errorf("event %+v lacks job, verified and claimed requester, account or time", ev)
		}
	}
	if evs[1].TaskARN != arn {
		t.Errorf("started names task %q, want %q", evs[1].TaskARN, arn)
	}
	end := evs[2]
	if end.Outcome != protocol.OutcomeFailed || end.ExitCode == nil || *end.ExitCode != 3 || end.StopCode != "EssentialContainerExited" || end.DurationSeconds == nil {
		t.Errorf("finished event %+v, want outcome failed, exit code 3, a stop code and a duration", end)
	}
	// No parameter value, secret or not, ever leaves in an event.
	for _, raw := range rec.raw {
		if strings.Contains(raw, "s3cr3tT0ken") || strings.Contains(raw, "params") {
			t.Errorf("event carries parameters: %s", raw)
		}
	}
	// Local mode (and CloudWatch) shows every event in the log too.
	if n := strings.Count(e.logs.String(), `"msg":"lifecycle event"`); n != 3 {
		t.Errorf("%d lifecycle event log lines, want 3", n)
	}
}

func TestLifecycleEventsOfARejectionAndACancel(t *testing.T) {
	rec := &eventRecorder{}
	e := newEnv(t, withEvents(rec))
	bad := e.request(func(r *protocol.Request) { r.Params = map[string]string{"version": "not a version"} })
	if err := e.run(bad); err != nil {
		t.Fatal(err)
	}
	evs := rec.of(bad.RunID)
	if got := states(evs); got != "requested,rejected" {
		t.Fatalf("states %s, want requested,rejected", got)
	}
	if evs[1].RejectCode != protocol.RejectBadParams || evs[1].Reason == "" || strings.Contains(evs[1].Reason, "not a version") {
		t.Errorf("rejected event %+v, want code %s and a reason without the value", evs[1], protocol.RejectBadParams)
	}

	runID, arn := e.started()
	if err := e.short(protocol.KindCancel, runID); err != nil {
		t.Fatal(err)
	}
	if err := e.invoke(e.event("ecs-task-stopped-exited.json", map[string]any{"TaskArn": arn, "StartedBy": runID, "Version": 5})); err != nil {
		t.Fatal(err)
	}
	if got := states(rec.of(runID)); got != "requested,started,cancelled" {
		t.Errorf("states of a cancelled run %s, want requested,started,cancelled", got)
	}
}

func TestLifecycleEventFailuresNeverFailARun(t *testing.T) {
	rec := &eventRecorder{err: errors.New("eventbridge is down")}
	e := newEnv(t, withEvents(rec))
	runID, _ := e.started()
	if it := e.item(runID); it.Status != ledger.Accepted {
		t.Errorf("status %s, want accepted although no event could be published", it.Status)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, `"msg":"lifecycle event not published"`); n != 2 {
		t.Errorf("%d warnings, want 2 (requested, started):\n%s", n, logs)
	}
	if !strings.Contains(logs, `"`+dispatcher.MetricEventsFailed+`":1`) || !strings.Contains(logs, `"CloudWatchMetrics"`) {
		t.Errorf("no embedded metric in the warning:\n%s", logs)
	}
}

// The emulator's EventBridge accepts the events on the default bus, as local
// mode publishes them.
func TestLifecycleEventsReachTheEmulator(t *testing.T) {
	e := newEnv(t, withEvents(eventbridge.NewFromConfig(sharedMoto(t))))
	e.started()
	if strings.Contains(e.logs.String(), "not published") {
		t.Errorf("events not published to the emulator:\n%s", e.logs.String())
	}
}
