package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"
)

func TestCheckKeys(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{"v":1,"records":[{"type":"x","a_1":{"b":[{"c":1},{"c":2}]}}]}`, ""},
		{`[{"a":1},{"a":1}]`, ""},
		{`{"a":{"x":1},"b":{"x":1}}`, ""},
		{`{"s":"{\"A\":1,\"a\":2}","t":"\\","u":"\\\""}`, ""}, // keys inside strings are text
		{`{}`, ""},
		{`"V"`, ""},
		{`{"V":1}`, `field "V" is not lower-case`},
		{`{"a":{"b":[{"c":1,"C":2}]}}`, `field "a.b.C" is not lower-case`},
		{`{"a":1,"a":2}`, `field "a" appears twice`},
		{`{"a":{"x":1},"b":[{"y":1,"y":2}]}`, `field "b.y" appears twice`},
		{`{"a":{"x":1},"b":{"x":1,"x":2}}`, `field "b.x" appears twice`},
		{`{"s\u0072c":1}`, `field "s\\u0072c" is not a field name`},
		{`{"ſrc":1}`, `is not a field name of this protocol`}, // U+017F folds to 's' in encoding/json
		{`{"K":1}`, `is not lower-case`},                      // U+212A KELVIN SIGN folds to 'k'
		{`{"":1}`, `field "" is not a field name`},
		{`{"a-b":1}`, `is not a field name`},
	} {
		err := checkKeys([]byte(c.doc), "doc")
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.doc, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i <= maxObjectKeys; i++ {
		fmt.Fprintf(&b, `"k%d":1,`, i)
	}
	b.WriteString(`"z":1}`)
	if err := checkKeys([]byte(b.String()), "doc"); err == nil || !strings.Contains(err.Error(), "more than 128 fields") {
		t.Errorf("wide object: %v", err)
	}
}

func TestValidBase64(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for n := 0; n < 40; n++ {
		p := make([]byte, n)
		r.Read(p)
		if s := base64.StdEncoding.EncodeToString(p); n > 0 && !validBase64(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "A", "AA", "AAA", "AA=", "====", "A===", "AA==AA==", "aGk", "aGl=", "aGk=\n", "aG\nk=", "aGk*", "-_-_", "aR=="} {
		if validBase64(s) {
			t.Errorf("%q accepted", s)
		}
	}
	// Whatever it accepts, DecodeText decodes and EncodeText writes back the same.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
	for i := 0; i < 100000; i++ {
		b := make([]byte, 4*(1+r.Intn(3)))
		for j := range b {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		if s := string(b); validBase64(s) {
			p, err := DecodeText("", s)
			if err != nil || base64.StdEncoding.EncodeToString(p) != s {
				t.Fatalf("%q accepted but decodes to %q, %v", s, p, err)
			}
		}
	}
}

// deployLog is a feedback message body of about size bytes: output records
// of 200 lines each, such as the runner sends for a chatty deployment.
func deployLog(size int) []byte {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var b MessageBuilder
	b.Reset()
	seq := uint64(1)
	for i := 0; b.Len() < size-200; i++ {
		if b.Lines() == 200 || !b.InOutput() {
			b.BeginOutput(SourceRunner, seq, t0)
			seq++
		}
		line := fmt.Sprintf("2026-11-22T10:00:%02d.%03dZ \x1b[32mINFO\x1b[0m deploy: uploaded \"assets/app-%06d.js\" (%d bytes) to s3://example-website-bucket", i%60, i%1000, i, 1000+i)
		if i%50 == 0 {
			line += "\xff" // invalid UTF-8: the line travels as base64
		}
		b.AppendLine(Stdout, t0.Add(time.Duration(i)*time.Millisecond), []byte(line), false)
	}
	return b.Bytes()
}

func TestDeployLogDecodes(t *testing.T) {
	body := deployLog(MaxMessageBytes)
	recs, err := DecodeMessage(body)
	if err != nil || len(body) > MaxMessageBytes || len(recs) < 10 {
		t.Fatalf("%d bytes, %d records: %v", len(body), len(recs), err)
	}
}

// BenchmarkDecodeMessage1MiB decodes a 1 MiB message of output lines; the
// "keys" variant is the strict key check alone, to compare with the decode.
func BenchmarkDecodeMessage1MiB(b *testing.B) {
	body := deployLog(MaxMessageBytes)
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := DecodeMessage(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keys", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := checkKeys(body, "feedback message"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// refKeys is the reference for checkKeys, on encoding/json's own tokenizer:
// every decoded key is [a-z0-9_]+ and unique in its object, and no object
// has more than maxObjectKeys keys.
func refKeys(dec *json.Decoder) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return false
			}
			k := kt.(string)
			if !plainName([]byte(k)) || seen[k] || len(seen) == maxObjectKeys {
				return false
			}
			seen[k] = true
			if !refKeys(dec) {
				return false
			}
		}
		_, err = dec.Token()
		return err == nil
	case json.Delim('['):
		for dec.More() {
			if !refKeys(dec) {
				return false
			}
		}
		_, err = dec.Token()
		return err == nil
	}
	return true
}

// FuzzCheckKeys: on valid JSON, the skimming key check agrees with one built
// on encoding/json's tokenizer, except that it also refuses escaped keys.
func FuzzCheckKeys(f *testing.F) {
	f.Add([]byte(`{"v":1,"records":[{"type":"output","x":"a\"b\\","b":"{\"A\":1}"}]}`))
	f.Add([]byte(`{"a":{"b":1},"c":[{"b":1,"b":2}]}`))
	f.Add([]byte(`{"ſrc":1,"\u0061":2}`))
	f.Add([]byte(`[[],{},"",0,true,null,{"k":{"k":{"k":[]}}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		got := checkKeys(b, "doc") == nil
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		want := refKeys(dec)
		if got && !want {
			t.Fatalf("checkKeys accepts %q", b)
		}
		if !got && want && !bytes.Contains(b, []byte(`\`)) {
			t.Fatalf("checkKeys refuses %q: %v", b, checkKeys(b, "doc"))
		}
	})
}
