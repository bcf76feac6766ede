package runner

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Job outputs (issue 17). The runner creates an empty file, names it in the
// job's $DEPLOY_BROKER_OUTPUT, and after the job exits reads it: lines
// "name=value", or the heredoc form GitHub Actions uses for multi-line
// values:
//
//	name<<DELIMITER
//	line 1
//	line 2
//	DELIMITER
//
// What is over the limits (protocol.MaxOutputs…) or malformed is dropped,
// each with one line in the job's output (stderr) and the runner's log; the
// rest goes, redacted like output lines, in the exit record.

// MaxOutputsFileBytes bounds the outputs file: a larger file is refused as a
// whole (nothing in it is sent).
const MaxOutputsFileBytes = 1 << 20

// outputsProblemPrefix starts every line the runner adds to the job's
// stderr about its outputs.
const outputsProblemPrefix = "deploy-broker: outputs: "

// ParseOutputs parses the contents of an outputs file. It returns the valid
// outputs, in the order their names first appear (a repeated name takes its
// last value, as in GitHub Actions), and one message per thing it dropped.
// Limits on count and total size apply in file order: what comes after the
// limit is dropped.
func ParseOutputs(data []byte) (outs []protocol.JobOutput, problems []string) {
	if len(data) > MaxOutputsFileBytes {
		return nil, []string{fmt.Sprintf("the outputs file has more than %d bytes: no output is sent", MaxOutputsFileBytes)}
	}
	drop := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	lines := strings.Split(string(data), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	index := map[string]int{}
	total := 0
	for i := 0; i < len(lines); i++ {
		ln, lineNo := lines[i], i+1
		if strings.TrimSpace(ln) == "" {
			continue
		}
		var name, value string
		eq := strings.IndexByte(ln, '=')
		hd := strings.Index(ln, "<<")
		switch {
		case hd >= 0 && (eq < 0 || hd < eq):
			name = ln[:hd]
			delim := ln[hd+2:]
			if delim == "" {
				drop("line %d: %q has an empty heredoc delimiter: dropped", lineNo, clip(name))
				continue
			}
			end := -1
			for j := i + 1; j < len(lines); j++ {
				if lines[j] == delim {
					end = j
					break
				}
			}
			if end < 0 {
				drop("line %d: %q: the heredoc delimiter %q never appears on a line of its own: dropped with the rest of the file", lineNo, clip(name), clip(delim))
				i = len(lines)
				continue
			}
			value = strings.Join(lines[i+1:end], "\n")
			i = end
		case eq >= 0:
			name, value = ln[:eq], ln[eq+1:]
		default:
			drop("line %d: neither name=value nor name<<DELIMITER: dropped", lineNo)
			continue
		}
		if !protocol.ValidOutputName(name) {
			drop("line %d: %q is not a valid output name (letters, digits, '_' and '-', at most %d, not starting with a digit or '-'): dropped", lineNo, clip(name), protocol.MaxOutputNameLength)
			continue
		}
		if !utf8.ValidString(value) {
			drop("line %d: %q is not valid UTF-8: dropped", lineNo, name)
			continue
		}
		if len(value) > protocol.MaxOutputValueBytes {
			drop("line %d: %q has %d bytes, over the %d limit: dropped", lineNo, name, len(value), protocol.MaxOutputValueBytes)
			continue
		}
		if k, ok := index[name]; ok {
			old := outs[k].Value
			if total-len(old)+len(value) > protocol.MaxOutputsBytes {
				drop("line %d: %q would bring the outputs over %d bytes: dropped", lineNo, name, protocol.MaxOutputsBytes)
				continue
			}
			total += len(value) - len(old)
			outs[k].Value = value
			continue
		}
		if len(outs) >= protocol.MaxOutputs {
			drop("line %d: %q is over the limit of %d outputs: dropped", lineNo, name, protocol.MaxOutputs)
			continue
		}
		if total+len(name)+len(value) > protocol.MaxOutputsBytes {
			drop("line %d: %q would bring the outputs over %d bytes: dropped", lineNo, name, protocol.MaxOutputsBytes)
			continue
		}
		total += len(name) + len(value)
		index[name] = len(outs)
		outs = append(outs, protocol.JobOutput{Name: name, Value: value})
	}
	return outs, problems
}

func clip(s string) string {
	if len(s) > 70 {
		s = s[:70] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// redactOutputs masks secrets in the values, as in output lines. An output
// whose name holds a secret is dropped.
func redactOutputs(outs []protocol.JobOutput, red *Redactor) ([]protocol.JobOutput, []string) {
	var problems []string
	var spans []span
	kept := outs[:0]
	for _, o := range outs {
		if spans = red.Find([]byte(o.Name), spans); len(spans) > 0 {
			problems = append(problems, "an output whose name contains a secret: dropped")
			continue
		}
		if spans = red.Find([]byte(o.Value), spans); len(spans) > 0 {
			o.Value = string(Apply(nil, []byte(o.Value), spans))
		}
		kept = append(kept, o)
	}
	return kept, problems
}

// outputsFile is the job's outputs file. The runner keeps the file it
// created open and reads that, never the path again: a job that replaces
// the path (a symlink to a file only the runner may read) changes nothing
// the runner reads.
type outputsFile struct {
	path string
	f    *os.File
}

// newOutputsFile creates the empty outputs file (mode 0600, in the temporary
// directory; owned by the job's uid when cred is not nil) and returns the
// job's environment with EnvOutput naming it.
func newOutputsFile(env []string, cred *syscall.Credential) (*outputsFile, []string, error) {
	f, err := os.CreateTemp("", "deploy-broker-outputs-*")
	if err != nil {
		return nil, env, err
	}
	if cred != nil {
		if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, env, fmt.Errorf("giving the outputs file to the job's uid %d: %w", cred.Uid, err)
		}
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, protocol.EnvOutput+"=") {
			out = append(out, kv)
		}
	}
	return &outputsFile{path: f.Name(), f: f}, append(out, protocol.EnvOutput+"="+f.Name()), nil
}

// collect reads, validates and redacts the outputs and removes the file.
func (o *outputsFile) collect(red *Redactor) ([]protocol.JobOutput, []string) {
	defer os.Remove(o.path)
	defer o.f.Close()
	if _, err := o.f.Seek(0, io.SeekStart); err != nil {
		return nil, []string{fmt.Sprintf("cannot read the outputs file: %v", err)}
	}
	data, err := io.ReadAll(io.LimitReader(o.f, MaxOutputsFileBytes+1))
	if err != nil {
		return nil, []string{fmt.Sprintf("cannot read the outputs file: %v", err)}
	}
	outs, problems := ParseOutputs(data)
	outs, more := redactOutputs(outs, red)
	return outs, append(problems, more...)
}

// problemsChunk is the runner's lines about dropped outputs, as stderr
// output of the job (counted in neither lines nor bytes: the job did not
// write them).
func problemsChunk(problems []string, red *Redactor) *chunk {
	return noticeChunk(outputsProblemPrefix, problems, red)
}

// noticeChunk is lines of the runner's own, each starting with prefix, as
// stderr output of the job (counted in neither lines nor bytes).
func noticeChunk(prefix string, lines []string, red *Redactor) *chunk {
	c := &chunk{stream: protocol.Stderr, at: time.Now()}
	var spans []span
	for _, p := range lines {
		c.add([]byte(prefix+p), false, red, &spans)
	}
	return c
}

// teeProblems writes the problem lines to the local copy of stderr.
func teeProblems(w io.Writer, c *chunk) {
	if w == nil {
		return
	}
	var b bytes.Buffer
	for _, p := range c.pieces {
		b.Write(c.data[p.off:p.end])
		b.WriteByte('\n')
	}
	_, _ = w.Write(b.Bytes())
}
