package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

const validRun = `{"v":2,"kind":"run","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","job":"website","params":{"version":"1.4.2"},
 "requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:05:00Z",
 "requester":{"ci":"github-actions","repository":"org/app","ref":"refs/heads/main","sha":"abc","actor":"alice","run_url":"https://example.com/1"}}`

// edit decodes validRun loosely, changes it and encodes it again.
func edit(t *testing.T, f func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validRun), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeRequestValid(t *testing.T) {
	r, err := protocol.DecodeRequest([]byte(validRun))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != protocol.KindRun || r.RunID != "01JD5Q3ZC8W2V9T6R4N1M7K0HX" || r.Job != "website" || r.Params["version"] != "1.4.2" ||
		!r.ExpiresAt.Equal(time.Date(2026, 11, 22, 10, 5, 0, 0, time.UTC)) || r.Requester.Actor != "alice" {
		t.Errorf("decoded %+v", r)
	}
	if got := r.Requester.String(); got != "github-actions org/app@refs/heads/main by alice" {
		t.Errorf("requester string %q", got)
	}
	for _, kind := range []string{"cancel", "release"} {
		short := `{"v":2,"kind":"` + kind + `","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`
		if _, err := protocol.DecodeRequest([]byte(short)); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

func TestDecodeRequestRefuses(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		// unknown fields, anywhere
		{"unknown top-level field", edit(t, func(m map[string]any) { m["image"] = "evil:latest" }), `request is not valid: unknown field "image"`},
		{"unknown requester field", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["role"] = "admin" }), `unknown field "role"`},
		{"field in other case", strings.Replace(validRun, `"job"`, `"JOB"`, 1), `field "JOB" is not lower-case`},
		{"nested field in other case", strings.Replace(validRun, `"actor"`, `"Actor"`, 1), `field "requester.Actor" is not lower-case`},
		{"repeated field", strings.Replace(validRun, `"job":"website"`, `"job":"website","job":"migrate"`, 1), `field "job" appears twice`},
		{"field folded to another", strings.Replace(validRun, `"requested_at":"2026-11-22T10:00:00Z"`, `"requested_at":"2026-11-22T10:00:00Z","requeſted_at":"2026-11-22T10:04:00Z"`, 1), `field "requeſted_at" is not a field name of this protocol`},
		{"field name escaped", strings.Replace(validRun, `"job":"website"`, `"\u006aob":"website"`, 1), `field "\\u006aob" is not a field name`},
		{"param name escaped", strings.Replace(validRun, `"version":"1.4.2"`, `"versio\u006e":"1.4.2"`, 1), `field "params.versio\\u006e" is not a field name`},
		{"repeated param", strings.Replace(validRun, `"version":"1.4.2"`, `"version":"1.4.2","version":"9.9.9"`, 1), `field "params.version" appears twice`},
		// version
		{"version 3", edit(t, func(m map[string]any) { m["v"] = 3 }), "request has protocol version 3; this broker speaks request version 2"},
		{"version 0", edit(t, func(m map[string]any) { delete(m, "v") }), "request has protocol version 0"},
		// size
		{"oversize", edit(t, func(m map[string]any) { m["job"] = strings.Repeat("a", protocol.MaxRequestBytes) }), "over the 262144-byte limit"},
		{"param value too long", edit(t, func(m map[string]any) { m["params"] = map[string]any{"v": strings.Repeat("1", 4097)} }), `parameter "v" is 4097 bytes, over the 4096-byte limit`},
		{"requester field too long", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["actor"] = strings.Repeat("a", 1025) }), "requester field actor is 1025 bytes"},
		{"too many params", edit(t, func(m map[string]any) {
			p := map[string]any{}
			for i := 0; i < 65; i++ {
				p["p"+strings.Repeat("x", i)] = "1"
			}
			m["params"] = p
		}), "65 parameters, more than the 64 allowed"},
		// missing fields
		{"empty", "", "request is empty"},
		{"blank", "  \n", "request is empty"},
		{"no run id", edit(t, func(m map[string]any) { delete(m, "run_id") }), `run id "" must be a 26-character ULID`},
		{"no kind", edit(t, func(m map[string]any) { delete(m, "kind") }), "has no kind; expected run, cancel, release, approve or reject"},
		{"no job", edit(t, func(m map[string]any) { delete(m, "job") }), "names no job"},
		{"no requested_at", edit(t, func(m map[string]any) { delete(m, "requested_at") }), "must carry requested_at and expires_at"},
		{"no expires_at", edit(t, func(m map[string]any) { delete(m, "expires_at") }), "must carry requested_at and expires_at"},
		{"no requester", edit(t, func(m map[string]any) { delete(m, "requester") }), "has no requester"},
		{"no requester ci", edit(t, func(m map[string]any) { delete(m["requester"].(map[string]any), "ci") }), "requester has no ci field"},
		// wrong types
		{"v as string", edit(t, func(m map[string]any) { m["v"] = "1" }), `field "v" must be an integer, not a JSON string`},
		{"v as float", edit(t, func(m map[string]any) { m["v"] = 1.5 }), `field "v" must be an integer`},
		{"param as number", edit(t, func(m map[string]any) { m["params"] = map[string]any{"version": 1.4} }), `must be a string, not a JSON number`},
		{"params as array", edit(t, func(m map[string]any) { m["params"] = []any{"version"} }), `field "params" must be an object, not a JSON array`},
		{"requester as string", edit(t, func(m map[string]any) { m["requester"] = "alice" }), `field "requester" must be an object, not a JSON string`},
		{"time not RFC 3339", edit(t, func(m map[string]any) { m["requested_at"] = "yesterday" }), "request is not valid"},
		{"document is an array", `[1,2]`, "must be an object, not a JSON array"},
		{"document is null", `null`, "request"},
		// syntax
		{"not JSON", `run website`, "malformed JSON at byte 1"},
		{"truncated", validRun[:40], "the JSON ends early"},
		{"trailing object", validRun + `{"v":1}`, "unexpected data after the JSON object"},
		{"trailing garbage", validRun + ` x`, "unexpected data after the JSON object"},
		// values
		{"lower-case run id", edit(t, func(m map[string]any) { m["run_id"] = strings.ToLower(m["run_id"].(string)) }), "upper-case Crockford base32 only"},
		{"run id with I", edit(t, func(m map[string]any) { m["run_id"] = "01JD5Q3ZC8W2V9T6R4N1M7K0HI" }), `has 'I' at position 26`},
		{"run id overflows", edit(t, func(m map[string]any) { m["run_id"] = "81JD5Q3ZC8W2V9T6R4N1M7K0HX" }), "overflows 128 bits"},
		{"run id path", edit(t, func(m map[string]any) { m["run_id"] = "../../../../etc/passwd0000" }), "upper-case Crockford base32 only"},
		{"expires before requested", edit(t, func(m map[string]any) { m["expires_at"] = "2026-11-22T09:00:00Z" }), "expires (2026-11-22T09:00:00Z) before it was made"},
		{"unknown kind", edit(t, func(m map[string]any) { m["kind"] = "exec" }), `request kind "exec" is unknown`},
		{"bad job name", edit(t, func(m map[string]any) { m["job"] = "Web Site;rm" }), `job name "Web Site;rm" is not valid`},
		{"bad param name", edit(t, func(m map[string]any) { m["params"] = map[string]any{"--version": "1"} }), `parameter name "--version" is not valid`},
		{"requester control char", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["actor"] = "al\x1bice" }), "requester field actor contains a control character (U+001B)"},
		{"requester C1 control", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["actor"] = "al\u009bice" }), "requester field actor contains a control character (U+009B)"},
		{"requester bidi override", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["ref"] = "refs/heads/\u202enim" }), "requester field ref contains a control character (U+202E, an invisible format character"},
		{"requester bidi isolate", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["repository"] = "org/\u2066app" }), "requester field repository contains a control character (U+2066"},
		{"requester zero-width", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["actor"] = "al\u200bice" }), "(U+200B"},
		{"requester tag character", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["actor"] = "alice\U000E0041" }), "(U+E0041"},
		{"requester line separator", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["run_url"] = "https://x/\u2028y" }), "requester field run_url contains a control character (U+2028, a line break)"},
		{"requester paragraph separator", edit(t, func(m map[string]any) { m["requester"].(map[string]any)["sha"] = "abc\u2029" }), "(U+2029, a line break)"},
		{"cancel with params", `{"v":2,"kind":"cancel","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","params":{},"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "may carry only v, kind, run_id, timestamps and proof"},
		// decisions (issues 24, 25)
		{"approve without digest", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "approve", `"decision_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY",`), "must carry the request_digest of the run it decides"},
		{"reject with a short digest", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "reject", `"decision_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY","request_digest":"abc",`), "must carry the request_digest"},
		{"approve with an upper-case digest", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "approve", `"decision_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY","request_digest":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",`), "must carry the request_digest"},
		{"approve without decision id", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "approve", `"request_digest":"abababababababababababababababababababababababababababababababab",`), "must carry a decision_id"},
		{"approve with a bad decision id", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "approve", `"request_digest":"abababababababababababababababababababababababababababababababab","decision_id":"nope",`), "decision_id: run id"},
		{"cancel with a digest", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "cancel", `"request_digest":"abababababababababababababababababababababababababababababababab",`), "cancel request 01JD5Q3ZC8W2V9T6R4N1M7K0HX may not carry a request_digest"},
		{"release with a decision id", fmt.Sprintf(`{"v":2,"kind":"%s","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX",%s"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "release", `"decision_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY",`), "release request 01JD5Q3ZC8W2V9T6R4N1M7K0HX may not carry a decision_id"},
		{"release with requester", `{"v":2,"kind":"release","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","requester":{"ci":"x"},"requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, "may carry only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := protocol.DecodeRequest([]byte(c.body))
			if err == nil {
				t.Fatalf("decoded %+v", r)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\nwant it to contain %q", err, c.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") || len(err.Error()) > 600 {
				t.Errorf("error is not one short line: %q", err)
			}
		})
	}
}

func TestDecodeRequestOversizeIsErrTooLarge(t *testing.T) {
	_, err := protocol.DecodeRequest(make([]byte, protocol.MaxRequestBytes+1))
	if !errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
	// Exactly at the limit is parsed (and here refused for its content).
	_, err = protocol.DecodeRequest([]byte(strings.Repeat(" ", protocol.MaxRequestBytes)))
	if errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("a body of exactly the limit was refused for its size")
	}
}

func TestDecodeRequestKeepsPrintableUnicode(t *testing.T) {
	// Letters, emoji and right-to-left scripts are printable and pass (an
	// emoji sequence joined by U+200D ZERO WIDTH JOINER does not: that is a
	// format character).
	body := edit(t, func(m map[string]any) {
		q := m["requester"].(map[string]any)
		q["actor"], q["ref"], q["pipeline"] = "Zoë Ångström 🚀", "refs/heads/fix-ü", "נשר/deploy"
	})
	r, err := protocol.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requester.Actor != "Zoë Ångström 🚀" {
		t.Errorf("actor = %q", r.Requester.Actor)
	}
}

func TestIsControl(t *testing.T) {
	for _, r := range []rune{0, '\t', '\n', 0x1b, 0x7f, 0x80, 0x85, 0x9f, 0xad, 0x061c, 0x200b, 0x200e, 0x202a, 0x202e, 0x2028, 0x2029, 0x2066, 0x2069, 0xfeff, 0xfff9, 0xe0001, 0xe007f} {
		if !protocol.IsControl(r) {
			t.Errorf("U+%04X is not refused", r)
		}
	}
	for _, r := range []rune{' ', 'a', '~', 0xa0, 0xe9, 0x05d0, 0x2014, 0x20ac, 0xfffd, 0x1f680} {
		if protocol.IsControl(r) {
			t.Errorf("U+%04X is refused", r)
		}
	}
}

func TestDecodeRequestVersions(t *testing.T) {
	_, err := protocol.DecodeRequest([]byte(strings.Replace(validRun, `"v":2`, `"v":1`, 1)))
	if err == nil || !strings.Contains(err.Error(), "protocol version 1, from a deploy-trigger that sends no proof of identity") {
		t.Errorf("version 1: %v", err)
	}
	_, err = protocol.DecodeRequest([]byte(strings.Replace(validRun, `"v":2`, `"v":3`, 1)))
	if err == nil || !strings.Contains(err.Error(), "protocol version 3; this broker speaks request version 2") {
		t.Errorf("version 3: %v", err)
	}
}

func TestDecodeRequestProofIsOpaqueAndBounded(t *testing.T) {
	proof := `{"v":1,"method":"POST","url":"https://sts.eu-west-1.amazonaws.com/","headers":[{"name":"X-Amz-Date","value":"x"}],"body":"b"}`
	r, err := protocol.DecodeRequest([]byte(strings.Replace(validRun, `"v":2,`, `"v":2,"proof":`+proof+`,`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Proof) != proof {
		t.Errorf("proof = %s", r.Proof)
	}
	big := `{"v":1,"body":"` + strings.Repeat("A", protocol.MaxProofBytes) + `"}`
	_, err = protocol.DecodeRequest([]byte(strings.Replace(validRun, `"v":2,`, `"v":2,"proof":`+big+`,`, 1)))
	if err == nil || !strings.Contains(err.Error(), "proof of") {
		t.Errorf("oversized proof: %v", err)
	}
	_, err = protocol.DecodeRequest([]byte(strings.Replace(validRun, `"v":2,`, `"v":2,"proof":{"V":1},`, 1)))
	if err == nil {
		t.Errorf("a proof key in upper case passed the key check")
	}
}

func TestBindingFieldsCoverEveryFieldButTheProof(t *testing.T) {
	base, err := protocol.DecodeRequest([]byte(validRun))
	if err != nil {
		t.Fatal(err)
	}
	key := func(r *protocol.Request, aud string) string {
		b, _ := json.Marshal(r.BindingFields(aud))
		return string(b)
	}
	ref := key(base, "arn:aws:sns:eu-west-1:123456789012:broker")
	edits := map[string]func(r *protocol.Request){
		"run id":       func(r *protocol.Request) { r.RunID = "01JD5Q3ZC8W2V9T6R4N1M7K0HY" },
		"kind":         func(r *protocol.Request) { r.Kind = protocol.KindCancel },
		"job":          func(r *protocol.Request) { r.Job = "other" },
		"param value":  func(r *protocol.Request) { r.Params = map[string]string{"version": "1.4.3"} },
		"param added":  func(r *protocol.Request) { r.Params = map[string]string{"version": "1.4.2", "x": ""} },
		"expires_at":   func(r *protocol.Request) { r.ExpiresAt = r.ExpiresAt.Add(time.Nanosecond) },
		"requested_at": func(r *protocol.Request) { r.RequestedAt = r.RequestedAt.Add(-time.Second) },
		"actor":        func(r *protocol.Request) { r.Requester.Actor = "mallory" },
		"run url":      func(r *protocol.Request) { r.Requester.RunURL = "https://evil/" },
		"no requester": func(r *protocol.Request) { r.Requester = nil },
		"version":      func(r *protocol.Request) { r.V = 3 },
	}
	for name, f := range edits {
		r, _ := protocol.DecodeRequest([]byte(validRun))
		f(r)
		if key(r, "arn:aws:sns:eu-west-1:123456789012:broker") == ref {
			t.Errorf("%s is not bound", name)
		}
	}
	if key(base, "arn:aws:sns:eu-west-1:123456789012:other") == ref {
		t.Errorf("audience is not bound")
	}
	withProof, _ := protocol.DecodeRequest([]byte(validRun))
	withProof.Proof = json.RawMessage(`{}`)
	if key(withProof, "arn:aws:sns:eu-west-1:123456789012:broker") != ref {
		t.Errorf("the proof changes the binding")
	}
}

// Decisions carry their digest and decision id, and both are bound by the
// proof (BindingFields) only when present, so a cancel or release without
// them binds as before.
func TestDecodeRequestDecisionFields(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	body := fmt.Sprintf(`{"v":2,"kind":"approve","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","request_digest":%q,"decision_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY","requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`, digest)
	r, err := protocol.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.RequestDigest != digest || r.DecisionID != "01JD5Q3ZC8W2V9T6R4N1M7K0HY" {
		t.Fatalf("decoded %+v", r)
	}
	bound := map[string]string{}
	for _, f := range r.BindingFields("arn:aws:sns:us-east-1:123456789012:b") {
		bound[f[0]] = f[1]
	}
	if bound["request_digest"] != digest || bound["decision_id"] != r.DecisionID {
		t.Errorf("binding fields %v lack the decision fields", bound)
	}
	cancel := `{"v":2,"kind":"cancel","run_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HX","decision_id":"01JD5Q3ZC8W2V9T6R4N1M7K0HY","requested_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:01:00Z"}`
	if _, err := protocol.DecodeRequest([]byte(cancel)); err != nil {
		t.Errorf("cancel with a decision id: %v", err)
	}
}
