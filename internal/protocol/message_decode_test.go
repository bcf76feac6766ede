package protocol_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func sampleRecords() []protocol.Record {
	code := 3
	return []protocol.Record{
		{Type: protocol.TypeAccepted, Src: protocol.SourceDispatcher, Seq: 1, Time: t0, Accepted: &protocol.Accepted{Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/b/1", Account: "123456789012", AccountAlias: "prod"}},
		{Type: protocol.TypeTask, Src: protocol.SourceECS, Seq: 4, Time: t0, Task: &protocol.Task{TaskARN: "arn", Status: "STOPPED", StopCode: "TaskFailedToStart", StoppedReason: "CannotPullContainerError", ExitCode: &code}},
		{Type: protocol.TypeOutput, Src: protocol.SourceRunner, Seq: 2, Time: t0, Output: &protocol.Output{Lines: []protocol.Line{
			{Stream: protocol.Stdout, Millis: 1, Text: "\x1b[32mok\x1b[0m"}, {Stream: protocol.Stderr, Millis: 2, B64: "/w==", Cont: true}}}},
		{Type: protocol.TypeExit, Src: protocol.SourceRunner, Seq: 3, Time: t0, Exit: &protocol.Exit{Code: 0, Reason: protocol.ReasonCompleted, DurationMS: 1500, Lines: 2, Bytes: 10}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	want := sampleRecords()
	for name, enc := range map[string]func([]protocol.Record) ([]byte, error){"plain": protocol.EncodeMessage, "gzip": protocol.EncodeMessageGzip} {
		b, err := enc(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := protocol.DecodeMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) || *got[0].Accepted != *want[0].Accepted || *got[1].Task.ExitCode != 3 ||
			got[2].Output.Lines[0].Text != want[2].Output.Lines[0].Text || !got[3].Time.Equal(t0) {
			t.Errorf("%s round trip: %+v", name, got)
		}
		if bytes.ContainsRune(b, 0x1b) {
			t.Errorf("%s body carries a raw ESC, which SQS refuses", name)
		}
	}
}

func gz(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestDecodeMessageRefuses(t *testing.T) {
	rec := `{"type":"heartbeat","src":"runner","seq":5,"t":"2026-11-22T10:00:00Z","heartbeat":{"lines":1,"bytes":2}}`
	cases := []struct{ name, body, want string }{
		{"wrong version", `{"v":2,"records":[` + rec + `]}`, "feedback message has protocol version 2"},
		{"no version", `{"records":[` + rec + `]}`, "protocol version 0"},
		{"unknown field", `{"v":1,"records":[` + rec + `],"extra":1}`, `unknown field "extra"`},
		{"unknown record field", `{"v":1,"records":[` + strings.Replace(rec, `"seq"`, `"shell":"sh","seq"`, 1) + `]}`, `unknown field "shell"`},
		{"wrong type", `{"v":1,"records":[` + strings.Replace(rec, `"seq":5`, `"seq":"5"`, 1) + `]}`, `"records.seq" must be an integer`},
		{"negative seq", `{"v":1,"records":[` + strings.Replace(rec, `"seq":5`, `"seq":-5`, 1) + `]}`, `"records.seq" must be an integer`},
		{"no records", `{"v":1}`, "holds no records"},
		{"empty records", `{"v":1,"records":[]}`, "holds no records"},
		{"seq 0", `{"v":1,"records":[` + strings.Replace(rec, `"seq":5`, `"seq":0`, 1) + `]}`, "has no sequence number"},
		{"no time", `{"v":1,"records":[{"type":"heartbeat","src":"runner","seq":5,"heartbeat":{"lines":1,"bytes":2}}]}`, "has no time"},
		{"unknown source", `{"v":1,"records":[` + strings.Replace(rec, `"runner"`, `"ci"`, 1) + `]}`, `record source "ci" is unknown`},
		{"unknown type", `{"v":1,"records":[` + strings.Replace(rec, `"type":"heartbeat"`, `"type":"shell"`, 1) + `]}`, `record type "shell" is unknown`},
		{"payload of another type", `{"v":1,"records":[` + strings.Replace(rec, `"type":"heartbeat"`, `"type":"exit"`, 1) + `]}`, `must carry exactly its own "exit" payload`},
		{"two payloads", `{"v":1,"records":[` + strings.Replace(rec, `"heartbeat":{`, `"exit":{"code":1,"reason":"completed","duration_ms":1,"lines":0,"bytes":0},"heartbeat":{`, 1) + `]}`, "must carry exactly its own"},
		{"bad stream", `{"v":1,"records":[{"type":"output","src":"runner","seq":1,"t":"2026-11-22T10:00:00Z","output":{"lines":[{"s":"tty","d":0,"x":"hi"}]}}]}`, `has stream "tty"`},
		{"text and base64", `{"v":1,"records":[{"type":"output","src":"runner","seq":1,"t":"2026-11-22T10:00:00Z","output":{"lines":[{"s":"out","d":0,"x":"hi","b":"aGk="}]}}]}`, "has both text and base64"},
		{"records and gz", `{"v":1,"records":[` + rec + `],"gz":"` + gz(t, "["+rec+"]") + `"}`, "has both records and gz"},
		{"gz not base64", `{"v":1,"gz":"***"}`, "gz is not base64"},
		{"gz not gzip", `{"v":1,"gz":"aGVsbG8="}`, "gz is not gzip"},
		{"gz holds an object", `{"v":1,"gz":"` + gz(t, `{"v":1}`) + `"}`, "must be an array"},
		{"gz with unknown field", `{"v":1,"gz":"` + gz(t, "["+strings.Replace(rec, `"seq"`, `"x":1,"seq"`, 1)+"]") + `"}`, `unknown field "x"`},
		{"gz bomb", `{"v":1,"gz":"` + gz(t, strings.Repeat(" ", protocol.MaxDecompressedBytes+10)) + `"}`, "expands past"},
		{"oversize", `{"v":1,"records":[` + rec + `],"gz":"` + strings.Repeat("A", protocol.MaxMessageBytes) + `"}`, "over the 1048576-byte limit"},
		{"not JSON", `hello`, "malformed JSON"},
		// field names are exact and appear once, as in a request
		{"version in upper case", `{"V":1,"records":[` + rec + `]}`, `field "V" is not lower-case`},
		{"records in upper case", `{"v":1,"RECORDS":[` + rec + `]}`, `field "RECORDS" is not lower-case`},
		{"record field in upper case", `{"v":1,"records":[` + strings.Replace(rec, `"type"`, `"TYPE"`, 1) + `]}`, `field "records.TYPE" is not lower-case`},
		{"record field folded", `{"v":1,"records":[` + strings.Replace(rec, `"src"`, `"ſrc"`, 1) + `]}`, `is not a field name of this protocol`},
		{"record field escaped", `{"v":1,"records":[` + strings.Replace(rec, `"src"`, `"\u0073rc"`, 1) + `]}`, `is not a field name of this protocol`},
		{"repeated version", `{"v":1,"v":1,"records":[` + rec + `]}`, `field "v" appears twice`},
		{"repeated seq", `{"v":1,"records":[` + strings.Replace(rec, `"seq":5`, `"seq":5,"seq":6`, 1) + `]}`, `field "records.seq" appears twice`},
		{"repeated nested field", `{"v":1,"records":[` + strings.Replace(rec, `"lines":1`, `"lines":1,"lines":9`, 1) + `]}`, `field "records.heartbeat.lines" appears twice`},
		{"gz record field in upper case", `{"v":1,"gz":"` + gz(t, "["+strings.Replace(rec, `"type"`, `"Type"`, 1)+"]") + `"}`, `feedback records is not valid: field "Type" is not lower-case`},
		{"gz repeated field", `{"v":1,"gz":"` + gz(t, "["+strings.Replace(rec, `"seq":5`, `"seq":5,"seq":6`, 1)+"]") + `"}`, `field "seq" appears twice`},
		{"trailing data", `{"v":1,"records":[` + rec + `]}]`, "unexpected data after the JSON object"},
		// a job can send records to its own queue: no field the trigger
		// prints as its own line may hold a line break or an escape
		{"forged stop reason", `{"v":1,"records":[{"type":"task","src":"ecs","seq":99,"t":"2026-11-22T10:00:00Z","task":{"task_arn":"a","status":"STOPPED","stopped_reason":"x\n::error::pwned"}}]}`, "task record ecs/99 field stopped_reason contains a control character (U+000A, a line break)"},
		{"escape in exit message", `{"v":1,"records":[{"type":"exit","src":"runner","seq":3,"t":"2026-11-22T10:00:00Z","exit":{"code":0,"reason":"completed","message":"\u001b]52;c;aGk=\u0007","duration_ms":1,"lines":0,"bytes":0}}]}`, "field message contains a control character (U+001B)"},
		{"C1 in rejection", `{"v":1,"records":[{"type":"rejected","src":"dispatcher","seq":1,"t":"2026-11-22T10:00:00Z","rejected":{"code":"invalid","reason":"a\u009b2Jb"}}]}`, "field reason contains a control character (U+009B)"},
		{"bidi in accepted", `{"v":1,"records":[{"type":"accepted","src":"dispatcher","seq":1,"t":"2026-11-22T10:00:00Z","accepted":{"job":"a","task_arn":"t","account":"1","requested_by":"arn:\u202ex"}}]}`, "field requested_by contains a control character (U+202E"},
		{"CR in started job", `{"v":1,"records":[{"type":"started","src":"runner","seq":1,"t":"2026-11-22T10:00:00Z","started":{"job":"a\rb","heartbeat_s":1}}]}`, "field job contains a control character (U+000D, a line break)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, err := protocol.DecodeMessage([]byte(c.body))
			if err == nil {
				t.Fatalf("decoded %+v", recs)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
	_, err := protocol.DecodeMessage([]byte(`{"v":1,"gz":"` + gz(t, strings.Repeat(" ", protocol.MaxDecompressedBytes+10)) + `"}`))
	if !errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("gz bomb: %v, want ErrTooLarge", err)
	}
}

// A piece whose base64 is not canonical does not sink its message: the
// message decodes (so the exit record beside it survives) and only that
// piece refuses to give bytes, which deploy-trigger skips with a warning.
func TestBadBase64PieceKeepsItsMessage(t *testing.T) {
	for name, b64 := range map[string]string{"not base64": "***", "unpadded": "aGk", "line break": "aG\\nk=", "URL alphabet": "-_8="} {
		t.Run(name, func(t *testing.T) {
			body := `{"v":1,"records":[{"type":"output","src":"runner","seq":1,"t":"2026-11-22T10:00:00Z","output":{"lines":[{"s":"out","d":0,"x":"fine"},{"s":"out","d":0,"b":"` + b64 + `"}]}},` +
				`{"type":"exit","src":"runner","seq":2,"t":"2026-11-22T10:00:01Z","exit":{"code":3,"reason":"completed","duration_ms":1,"lines":2,"bytes":6}}]}`
			recs, err := protocol.DecodeMessage([]byte(body))
			if err != nil {
				t.Fatalf("the message was refused whole: %v", err)
			}
			if len(recs) != 2 || recs[1].Exit == nil || recs[1].Exit.Code != 3 {
				t.Fatalf("records %+v", recs)
			}
			if b, err := recs[0].Output.Lines[0].Bytes(); err != nil || string(b) != "fine" {
				t.Errorf("good piece: %q, %v", b, err)
			}
			if b, err := recs[0].Output.Lines[1].Bytes(); err == nil {
				t.Errorf("bad piece gave bytes %q", b)
			}
		})
	}
}
