package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// FuzzDecodeRequest: the request decoder never panics, and whatever it
// accepts survives a round trip through the encoder.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(validRun))
	f.Add([]byte(`{"v":2,"kind":"cancel","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`))
	f.Add([]byte(`{"v":2,"kind":"release","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`))
	f.Add([]byte(`{"v":2,"kind":"run","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","job":"a","params":{"p":"\u001b"},"requested_at":"2026-11-22T10:00:00+01:00","expires_at":"2026-11-22T10:01:00.123456789Z","requester":{"ci":"jenkins","pipeline":"deploy","build":"7"}}`))
	f.Add([]byte(`{"v":1,"RUN_ID":"x","run_id":"y"}`))
	f.Add([]byte(`[{"v":1}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := protocol.DecodeRequest(b)
		if err != nil {
			if r != nil {
				t.Fatal("a refused request came back non-nil")
			}
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		r2, err := protocol.DecodeRequest(again)
		if err != nil {
			t.Fatalf("accepted request does not decode after encoding: %v\n%s", err, again)
		}
		if r2.RunID != r.RunID || r2.Kind != r.Kind || r2.Job != r.Job || len(r2.Params) != len(r.Params) || !r2.ExpiresAt.Equal(r.ExpiresAt) {
			t.Fatalf("round trip changed the request: %+v -> %+v", r, r2)
		}
	})
}

// FuzzDecodeMessage: the feedback decoder never panics, and the records it
// accepts encode to a message it accepts again, plain or compressed.
func FuzzDecodeMessage(f *testing.F) {
	plain, _ := protocol.EncodeMessage(sampleRecords())
	gzipped, _ := protocol.EncodeMessageGzip(sampleRecords())
	f.Add(plain)
	f.Add(gzipped)
	f.Add([]byte(`{"v":1,"records":[{"type":"heartbeat","src":"runner","seq":5,"t":"2026-11-22T10:00:00Z","heartbeat":{"lines":1,"bytes":2}}]}`))
	f.Add([]byte(`{"v":1,"records":[{"type":"output","src":"runner","seq":1,"t":"2026-11-22T10:00:00Z","output":{"lines":[{"s":"out","d":0,"x":"\u001b[1mhi","c":true}]}}]}`))
	f.Add([]byte(`{"v":1,"gz":"H4sIAAAAAAAA/4uOBQApu0wNAgAAAA=="}`))
	f.Add([]byte(`{"v":1,"records":[{"type":"task","src":"ecs","seq":9,"t":"2026-11-22T10:00:00Z","task":{"task_arn":"a","status":"STOPPED","stopped_reason":"x\n::error::y"}}]}`))
	f.Add([]byte(`{"v":1,"records":[{"type":"exit","src":"runner","seq":3,"t":"2026-11-22T10:00:00Z","exit":{"code":0,"reason":"completed","message":"ok\u00a0\u2028","duration_ms":1,"lines":0,"bytes":0}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := protocol.DecodeMessage(b)
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.Type == protocol.TypeOutput {
				continue
			}
			// every string but the job's output: control characters refused
			j, _ := json.Marshal(r)
			var m any
			_ = json.Unmarshal(j, &m)
			var walk func(any)
			walk = func(v any) {
				switch v := v.(type) {
				case string:
					if c, bad := protocol.FindControl(v); bad {
						t.Fatalf("accepted %s record holds control character %U", r.Type, c)
					}
				case map[string]any:
					for _, x := range v {
						walk(x)
					}
				}
			}
			walk(m)
		}
		for name, enc := range map[string]func([]protocol.Record) ([]byte, error){"plain": protocol.EncodeMessage, "gzip": protocol.EncodeMessageGzip} {
			again, err := enc(recs)
			if err != nil {
				t.Fatalf("%s: accepted records do not encode: %v", name, err)
			}
			if len(again) > protocol.MaxMessageBytes {
				continue // the input was compressed better than we compress
			}
			recs2, err := protocol.DecodeMessage(again)
			if err != nil {
				t.Fatalf("%s: accepted records do not decode after encoding: %v", name, err)
			}
			if len(recs2) != len(recs) {
				t.Fatalf("%s: round trip has %d records, want %d", name, len(recs2), len(recs))
			}
		}
	})
}
