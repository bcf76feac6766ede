package runner

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func redact(r *Redactor, s string) string {
	return string(Apply(nil, []byte(s), r.Find([]byte(s), nil)))
}

func TestRedactor(t *testing.T) {
	r := NewRedactor([]string{"hunter22", "abc", "", "hunter22-longer"})
	for _, tc := range []struct{ in, want string }{
		{"password hunter22 ok", "password *** ok"},
		{"hunter22hunter22", "***"}, // adjacent matches merge
		{"hunter22-longer", "***"},  // the longer secret wins, masked whole
		{"abc is too short to redact", "abc is too short to redact"},
		{"id AKIAIOSFODNN7EXAMPLE.", "id ***."},
		{"id ASIAIOSFODNN7EXAMPLE", "id ***"},
		{"XAKIAIOSFODNN7EXAMPLE is part of a word", "XAKIAIOSFODNN7EXAMPLE is part of a word"},
		{"AKIA1234 too short", "AKIA1234 too short"},
		{`"SecretAccessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab",`, `"SecretAccessKey": "***",`},
		{"aws_secret_access_key=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab", "aws_secret_access_key=***"},
		{"AWS_SECRET_ACCESS_KEY: abcdefghijabcdefghijabcdefghijabcdefghij", "AWS_SECRET_ACCESS_KEY: ***"},
		{"key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "key *** here"},
		{"commit 0123456789abcdef0123456789abcdef01234567", "commit 0123456789abcdef0123456789abcdef01234567"},
		{"commit 0123456789ABCDEF0123456789abcdef01234567", "commit 0123456789ABCDEF0123456789abcdef01234567"},
		{"/usr/local/lib/Python3/site-packages/abcd", "/usr/local/lib/Python3/site-packages/abcd"},
		{"base64 wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYabcd== longer", "base64 wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYabcd== longer"},
		{"", ""},
	} {
		if got := redact(r, tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// testPEM is a PEM-like multi-line secret: what a TLS key from Secrets
// Manager looks like in an environment variable.
const testPEM = "-----BEGIN PRIVATE KEY-----\n" +
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n" +
	"MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n" +
	"NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n" +
	"qgtzJ6GR3eqoYSW9b9UMvkBpZODSctWSNGj3P7jRFDO5VoTwCQAWbFnOjDfH5Ulg\n" +
	"p2PKSQnSJP3AJLQNFNe7br1XbrhV//eO+t51mIpGSDCUv3E0DDFcWDTH9cXDTTlR\n" +
	"ZVEiR2BwpZOOkE/Z0/BVnhZYL71oZV34bKfWjQIt6V/isSMahdsAASACp4ZTGtwi\n" +
	"Aw==\n" +
	"-----END PRIVATE KEY-----\n"

func TestRedactorMultiLineSecret(t *testing.T) {
	// GIVEN a PEM key, the same key with CRLF line ends, and pretty-printed
	// JSON as secret values
	crlf := strings.ReplaceAll(testPEM, "\n", "\r\n")
	json := "{\n  \"username\": \"deployer\",\n  \"password\": \"correct-horse-battery\"\n}"
	for _, tc := range []struct {
		name, secret, printed, want string
	}{
		// THEN each line of the value is masked where the job prints it
		{"pem", testPEM, testPEM, strings.Repeat(Mask+"\n", 9)},
		{"pem with CRLF", crlf, crlf, strings.Repeat(Mask+"\r\n", 9)},
		{"CRLF secret printed with LF", crlf, testPEM, strings.Repeat(Mask+"\n", 9)},
		// indentation is kept, lines shorter than MinSecretLength ("{") stay
		{"json", json, json + "\n", "{\n  ***\n  ***\n}\n"},
		// a line of the secret is masked wherever it appears on its own
		{"one line quoted", testPEM, "key line: MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu.\n", "key line: ***.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRedactor([]string{tc.secret})
			var got strings.Builder
			// WHEN the printed text is redacted line by line, as the reader does
			for _, line := range strings.SplitAfter(tc.printed, "\n") {
				if line == "" {
					continue
				}
				body := strings.TrimSuffix(line, "\n")
				got.WriteString(redact(r, body) + line[len(body):])
			}
			if got.String() != tc.want {
				t.Fatalf("redacted:\n%q\nwant:\n%q", got.String(), tc.want)
			}
		})
	}
	// AND no line longer than the whole value is registered: the hold-back
	// of long lines does not grow with a multi-line secret
	if got, want := NewRedactor([]string{testPEM}).MaxMatch(), NewRedactor(nil).MaxMatch(); got != want {
		t.Errorf("MaxMatch %d, want %d (the patterns' own)", got, want)
	}
}

// The catalogue's secret variables reach the redactor with their newlines:
// ParseConfig keeps the value, NewRedactor splits it.
func TestParseConfigMultiLineSecret(t *testing.T) {
	env := []string{protocol.EnvRunID + "=01JDTESTRUN0000000000000000", protocol.EnvQueueURL + "=http://localhost/q.fifo",
		protocol.EnvRedact + "=TLS_KEY", "TLS_KEY=" + testPEM}
	c, err := ParseConfig([]string{"true"}, env)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRedactor(c.Secrets)
	for _, line := range strings.Split(strings.TrimSpace(testPEM), "\n") {
		if got := redact(r, line); got != Mask {
			t.Errorf("line %q redacted to %q", line, got)
		}
	}
}

// readPipe feeds data through a real pipe into a lineReader, written in
// writes of the given sizes, and returns the pieces it made.
func readPipe(t testing.TB, data []byte, writes []int, maxPiece int, red *Redactor) []piece2 {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan item, 1024)
	r := &lineReader{f: pr, stream: protocol.Stdout, out: out, red: red,
		readSize: 64, maxPiece: maxPiece, flushDelay: time.Hour}
	go func() {
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(writes) > 0 {
				n = min(n, max(1, writes[i%len(writes)]))
			}
			pw.Write(rest[:n])
			rest = rest[n:]
		}
		pw.Close()
	}()
	done := make(chan struct{})
	go func() { r.run(); close(done) }()
	var pieces []piece2
	for {
		select {
		case it := <-out:
			checkEncoded(t, it.chunk)
			for _, p := range it.chunk.pieces {
				pieces = append(pieces, piece2{append([]byte(nil), it.chunk.data[p.off:p.end]...), p.cont})
			}
			continue
		case <-done:
		}
		break
	}
	for len(out) > 0 {
		it := <-out
		checkEncoded(t, it.chunk)
		for _, p := range it.chunk.pieces {
			pieces = append(pieces, piece2{append([]byte(nil), it.chunk.data[p.off:p.end]...), p.cont})
		}
	}
	return pieces
}

type piece2 struct {
	b    []byte
	cont bool
}

func join(pieces []piece2) []byte {
	var b []byte
	for _, p := range pieces {
		b = append(b, p.b...)
		if !p.cont {
			b = append(b, '\n')
		}
	}
	return b
}

func TestRedactionAcrossPieceBoundaries(t *testing.T) {
	const secret = "zzSECRETzz"
	red := NewRedactor([]string{secret})
	maxPiece := 3*red.MaxMatch() + 1
	for off := 0; off < 2*maxPiece+len(secret); off += 7 {
		line := bytes.Repeat([]byte{'.'}, 3*maxPiece)
		copy(line[off:], secret)
		pieces := readPipe(t, append(line, '\n'), []int{100, 33}, maxPiece, red)
		if len(pieces) < 2 {
			t.Fatalf("no split: %d pieces", len(pieces))
		}
		want := strings.ReplaceAll(string(line), secret, Mask) + "\n"
		if got := string(join(pieces)); got != want {
			t.Fatalf("offset %d: secret leaked or bytes changed", off)
		}
	}
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), 3, 1, 2)
	f.Add([]byte("\r\n\x00\xff\n"), 8, 5, 1)
	f.Fuzz(func(t *testing.T, data []byte, maxPiece, w1, w2 int) {
		maxPiece = 8 + abs(maxPiece)%200
		pieces := readPipe(t, data, []int{abs(w1) % 300, abs(w2) % 300}, maxPiece, nil)
		got := join(pieces)
		want := data
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want = append(append([]byte(nil), data...), '\n')
			if !pieces[len(pieces)-1].cont {
				t.Fatalf("last piece of an unterminated stream must continue")
			}
			got = append(got, '\n')
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reassembled %q, want %q", got, want)
		}
		for _, p := range pieces {
			if len(p.b) > maxPiece {
				t.Fatalf("piece of %d bytes, max %d", len(p.b), maxPiece)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// A JSON secret (Secrets Manager key/value pairs) is masked in the forms a
// job prints it: its string leaves at any depth, alone or inside what the
// job builds from them, URL-encoded and JSON-escaped.
func TestRedactorJSONSecretLeavesAndDerivedForms(t *testing.T) {
	r := NewRedactor([]string{
		`{"username":"app","password":"S3cr3t","engine":"pg","port":5432,` +
			`"replica":{"password":"n3sted-pw"},"tokens":["first-t0ken",{"k":"p@ss:w/rd ok"}]}`,
	})
	for _, tc := range []struct{ in, want string }{
		// numbers are not leaves that get registered: a port is no secret
		{"postgres://app:S3cr3t@db:5432/app", "postgres://app:***@db:5432/app"},
		{"replica password n3sted-pw", "replica password ***"},
		{"token first-t0ken", "token ***"},
		{"raw p@ss:w/rd ok", "raw ***"},
		{"url user:p%40ss%3Aw%2Frd+ok@host", "url user:***@host"},
		{"path /p@ss:w%2Frd%20ok/", "path /***/"},
		// short leaves ("app", "pg") are below MinSecretLength
		{"engine pg for app", "engine pg for app"},
	} {
		if got := redact(r, tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// AND a JSON-escaped value is masked inside JSON output
	q := NewRedactor([]string{"quote\"and\\back"})
	if got := redact(q, `{"v":"quote\"and\\back"}`); got != `{"v":"***"}` {
		t.Errorf("JSON-escaped secret: %q", got)
	}
	// AND a value that is not JSON is registered as it is
	if got := redact(NewRedactor([]string{"{not json"}), "x {not json y"); got != "x *** y" {
		t.Errorf("non-JSON value: %q", got)
	}
}

// Session tokens are masked by their prefix, bare, and by their label in
// any format; short look-alikes are not.
func TestRedactorSessionTokens(t *testing.T) {
	r := NewRedactor(nil)
	sts := "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQD" + strings.Repeat("Ab3+", 60) + "=="
	other := strings.Repeat("Zm9vYmFy", 20)
	for _, tc := range []struct{ in, want string }{
		{"token " + sts + " end", "token *** end"},
		{`"SessionToken": "` + sts + `",`, `"SessionToken": "***",`},
		{"AWS_SESSION_TOKEN=" + other, "AWS_SESSION_TOKEN=***"},
		{"aws_security_token = " + other, "aws_security_token = ***"},
		{"IQoJb3JpZ2luX2Vj too short", "IQoJb3JpZ2luX2Vj too short"},
		{"xIQoJb3JpZ2lu" + strings.Repeat("A", 100), "xIQoJb3JpZ2lu" + strings.Repeat("A", 100)},
	} {
		if got := redact(r, tc.in); got != tc.want {
			t.Errorf("redact(%.60q…) = %.80q, want %.80q", tc.in, got, tc.want)
		}
	}
}

// Secret access keys without '+' or '/' (28% of random keys) are masked;
// identifiers and hashes of the same length are not.
func TestLooksLikeSecretKey(t *testing.T) {
	for _, tc := range []struct {
		k    string
		want bool
	}{
		{"wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab", true},
		{"/JalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab", true},
		{"wJalrXUtnFEMIKzMDENGbPxRfiCY+XAMPLEKEYab", true},
		{"0123456789ABCDEF0123456789abcdef01234567", false}, // git SHA, mixed case
		{"ApiGatewayDeploymentStageProdLog4A1B2C3D", false}, // CloudFormation logical id
		{"ConfigurationPropertiesBindingPostProces", false}, // no digit, '+' or '/'
		{"a/b/c/d/e/f/g/h/AbCdEfGh1234567890abcdef", false}, // path-like
	} {
		if len(tc.k) != 40 {
			t.Fatalf("%q is %d long", tc.k, len(tc.k))
		}
		if got := LooksLikeSecretKey([]byte(tc.k)); got != tc.want {
			t.Errorf("LooksLikeSecretKey(%q) = %v, want %v", tc.k, got, tc.want)
		}
	}
}
