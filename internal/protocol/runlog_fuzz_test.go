package protocol

import (
	"bytes"
	"testing"
)

func FuzzDecodeRunLogLine(f *testing.F) {
	f.Add([]byte(`{"deploy_broker_run":"R","n":1,"lines":[{"s":"out","d":0,"x":"hello"},{"s":"err","d":0,"b":"/w==","c":true}]}`))
	f.Add([]byte(`{"deploy_broker_run":"R","n":2,"exit":{"code":3,"reason":"completed","duration_ms":1,"lines":1,"bytes":6,"outputs":[{"name":"a","value":"b"}]}}`))
	f.Add([]byte(`{"deploy_broker_run":"R","n":1,"lines":[],"exit":null}`))
	f.Add([]byte(`{"time":"x","level":"INFO","msg":"run finished"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ok, err := DecodeRunLogLine(b, "R")
		if !ok || err != nil {
			return
		}
		// What decodes re-encodes to a line that decodes the same.
		again, ok2, err := DecodeRunLogLine(EncodeRunLogLine(nil, &l), "R")
		if !ok2 || err != nil || again.N != l.N || len(again.Lines) != len(l.Lines) {
			t.Fatalf("re-encoding %q: ok %v, %v", b, ok2, err)
		}
		for i := range l.Lines {
			a, _ := l.Lines[i].Bytes()
			c, _ := again.Lines[i].Bytes()
			if !bytes.Equal(a, c) {
				t.Fatalf("piece %d changed", i)
			}
		}
	})
}
