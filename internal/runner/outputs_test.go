package runner

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestParseOutputs(t *testing.T) {
	in := "image=registry/app:1.4.2\r\n" +
		"\n" +
		"notes<<EOF_1\nline one\nline = two\n<<not a delimiter\nEOF_1\n" +
		"empty=\n" +
		"eq=a=b<<c\n" +
		"image=registry/app:1.4.3\n" +
		"9bad=x\n" +
		"garbage line\n" +
		"url<<END\nhttps://example\n"
	outs, problems := ParseOutputs([]byte(in))
	want := []protocol.JobOutput{
		{Name: "image", Value: "registry/app:1.4.3"},
		{Name: "notes", Value: "line one\nline = two\n<<not a delimiter"},
		{Name: "empty", Value: ""},
		{Name: "eq", Value: "a=b<<c"},
	}
	if !reflect.DeepEqual(outs, want) {
		t.Errorf("outputs = %q\nwant %q", outs, want)
	}
	if len(problems) != 3 || !strings.Contains(problems[0], `"9bad" is not a valid output name`) ||
		!strings.Contains(problems[1], "line 12: neither name=value") ||
		!strings.Contains(problems[2], `"url": the heredoc delimiter "END" never appears`) {
		t.Errorf("problems = %q", problems)
	}
}

func TestParseOutputsLimits(t *testing.T) {
	var b strings.Builder
	for i := range protocol.MaxOutputs + 2 {
		fmt.Fprintf(&b, "o%d=v\n", i)
	}
	outs, problems := ParseOutputs([]byte(b.String()))
	if len(outs) != protocol.MaxOutputs || len(problems) != 2 || !strings.Contains(problems[0], "over the limit of 64 outputs") {
		t.Errorf("%d outputs, problems %q", len(outs), problems)
	}

	big := strings.Repeat("x", protocol.MaxOutputValueBytes)
	in := "a=" + big + "x\n" // one byte over
	for i := range 5 {
		in += fmt.Sprintf("b%d=%s\n", i, big)
	}
	outs, problems = ParseOutputs([]byte(in))
	if len(outs) != 3 || len(problems) != 3 || !strings.Contains(problems[0], `"a" has 16385 bytes`) ||
		!strings.Contains(problems[1], "would bring the outputs over 65536 bytes") {
		t.Errorf("%d outputs, problems %q", len(outs), problems)
	}
	if err := protocol.ValidateOutputs(outs); err != nil {
		t.Error(err)
	}

	outs, problems = ParseOutputs(make([]byte, MaxOutputsFileBytes+1))
	if outs != nil || len(problems) != 1 || !strings.Contains(problems[0], "no output is sent") {
		t.Errorf("%d outputs, problems %q", len(outs), problems)
	}
	outs, problems = ParseOutputs([]byte("bin=\xff\xfe\n"))
	if outs != nil || len(problems) != 1 || !strings.Contains(problems[0], "not valid UTF-8") {
		t.Errorf("%d outputs, problems %q", len(outs), problems)
	}
}

func FuzzParseOutputs(f *testing.F) {
	f.Add([]byte("a=b\nc<<EOF\nx\ny\nEOF\n"))
	f.Add([]byte("a<<\n"))
	f.Add([]byte("a<<E\n\nE\na<<E\r\nE\r\n"))
	f.Add([]byte("-x=1\n_y=2\n=3\n<<4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		outs, _ := ParseOutputs(data)
		if err := protocol.ValidateOutputs(outs); err != nil {
			t.Fatalf("ParseOutputs returned invalid outputs: %v", err)
		}
	})
}

// A job's outputs reach the exit record, secrets redacted, with a line on
// stderr for each output dropped, and the file is removed.
func TestRunOutputs(t *testing.T) {
	content := "image=app:1.2\nbad name=1\ntoken<<X\nhunter2-secret-value\nX\n"
	res, r := runJob(t, func(c *Config) {
		c.Secrets = []string{"hunter2-secret-value"}
	}, "outputs", content)
	x := r.exit()
	if x == nil || x.Code != 3 {
		t.Fatalf("exit = %+v", x)
	}
	want := []protocol.JobOutput{{Name: "image", Value: "app:1.2"}, {Name: "token", Value: Mask}}
	if !reflect.DeepEqual(x.Outputs, want) || !reflect.DeepEqual(res.Exit.Outputs, want) {
		t.Errorf("outputs = %q, want %q", x.Outputs, want)
	}
	_, errOut, _ := r.streams(t)
	if !strings.Contains(string(errOut), `deploy-broker: outputs: line 2: "bad name" is not a valid output name`) {
		t.Errorf("stderr = %q", errOut)
	}
	if x.Lines != 1 {
		t.Errorf("lines = %d: the runner's own lines are counted", x.Lines)
	}
	out, _, _ := r.streams(t)
	path, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "writing outputs to ")
	if !ok || path == "" {
		t.Fatalf("stdout = %q", out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("outputs file %s left behind: %v", path, err)
	}
}
