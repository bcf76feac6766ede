package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The run log (issue 17). With EnvLogFormat=LogFormatRecords the runner
// writes to its own stdout, which the task definition's awslogs driver sends
// to the run's CloudWatch Logs stream, one JSON object a line: the job's
// output exactly as it went to the queue (redacted, both streams in the one
// order the runner read them), then the exit record. `deploy-trigger logs`
// and `attach` read it back, because SQS reads are destructive and the run
// queue cannot serve a second reader. The job cannot write these lines: its
// stdout and stderr are pipes to the runner, which escapes everything in
// JSON.
//
// Lines stay under RunLogMaxLine bytes (Docker splits longer ones): output
// goes in pieces of at most RunLogMaxPiece bytes, continued (Cont) where the
// runner split them.

// EnvLogFormat selects what the runner writes to its stdout: "raw" (the
// default: the job's bytes, as is) or "records" (the run log).
const (
	// EnvRunLogGroup names the run log group for the dispatcher, which
	// copies the job's outputs from a run's log into the ledger.
	EnvRunLogGroup   = "DEPLOY_BROKER_RUN_LOG_GROUP"
	EnvLogFormat     = "DEPLOY_BROKER_LOG_FORMAT"
	LogFormatRaw     = "raw"
	LogFormatRecords = "records"
)

// Bounds of run log lines.
const (
	RunLogMaxPiece = 4 << 10
	RunLogMaxLine  = 16 << 10
)

// RunLogLine is one line of the run log. N numbers the lines 1, 2, 3…
// without gaps, so a reader notices a missing or repeated one.
type RunLogLine struct {
	Run   string `json:"deploy_broker_run"`
	N     uint64 `json:"n"`
	Lines []Line `json:"lines,omitempty"`
	Exit  *Exit  `json:"exit,omitempty"`
	// OutputsOmitted: the job's outputs did not fit in a line; they went
	// in the exit record to the queue only.
	OutputsOmitted bool `json:"outputs_omitted,omitempty"`
}

// RunLogLineFor returns the Line of one piece (at most RunLogMaxPiece
// bytes), with the same choice of text or base64 as [AppendPiece].
func RunLogLineFor(stream Stream, p []byte, cont bool) Line {
	l := Line{Stream: stream, Cont: cont}
	if pieceIsText(p) {
		l.Text = string(p)
	} else {
		l.B64 = base64Std(p)
	}
	return l
}

// EncodeRunLogLine appends l as one JSON line (with its newline) to dst.
func EncodeRunLogLine(dst []byte, l *RunLogLine) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(l)
	return append(dst, b.Bytes()...)
}

// A run log line of pieces can also be written without reflection, from
// pieces already encoded by [AppendPiece] for the queue's messages (the
// runner's hot path: each piece is encoded once for both copies):
// AppendRunLogHead, AppendRunLogPiece for each piece, AppendRunLogEnd. The
// line decodes ([DecodeRunLogLine]) exactly as the one [EncodeRunLogLine]
// writes for the same pieces: it differs only in the JSON escaping of the
// text ([AppendPiece]'s) and in leaving out each piece's "d", which is
// always 0 in the run log (6 bytes of about 125 a line of 100 bytes).

// RunLogPrefix is how every line of a run's log starts, for
// AppendRunLogHead: `{"deploy_broker_run":"<runID>","n":`.
func RunLogPrefix(runID string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(runID)
	return append(append([]byte(`{"deploy_broker_run":`), bytes.TrimSuffix(b.Bytes(), []byte("\n"))...), `,"n":`...)
}

// AppendRunLogHead begins line n (prefix from RunLogPrefix) whose pieces
// follow.
func AppendRunLogHead(dst, prefix []byte, n uint64) []byte {
	dst = append(dst, prefix...)
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, `,"lines":[`...)
}

// AppendRunLogPiece appends a piece of stream s encoded by AppendPiece;
// first when it is the line's first.
func AppendRunLogPiece(dst []byte, first bool, s Stream, enc []byte, cont bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"s":"`...)
	dst = append(dst, s...)
	dst = append(dst, '"')
	dst = append(dst, enc...)
	return appendLineEnd(dst, cont)
}

// RunLogPieceLen is what AppendRunLogPiece appends, comma included.
func RunLogPieceLen(s Stream, enc []byte, cont bool) int {
	n := len(`,{"s":""}`) + len(s) + len(enc)
	if cont {
		n += len(`,"c":true`)
	}
	return n
}

// AppendRunLogEnd ends a line begun by AppendRunLogHead, newline included.
func AppendRunLogEnd(dst []byte) []byte { return append(dst, "]}\n"...) }

// SplitPiece cuts p into pieces of at most RunLogMaxPiece bytes, each cut
// between UTF-8 characters when p is text.
func SplitPiece(p []byte) [][]byte {
	var out [][]byte
	for len(p) > RunLogMaxPiece {
		cut := RunLogMaxPiece
		for i := 0; i < 4 && cut > 1 && !utf8.RuneStart(p[cut]); i++ {
			cut--
		}
		out = append(out, p[:cut])
		p = p[cut:]
	}
	return append(out, p)
}

// DecodeRunLogLine reads one log event. ok is false for a line that is not
// a run log line (the runner's own diagnostics share the log stream); an
// error means a line that claims to be one but is malformed.
func DecodeRunLogLine(b []byte, runID string) (l RunLogLine, ok bool, err error) {
	if len(b) > RunLogMaxLine || !bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"deploy_broker_run":`)) {
		return l, false, nil
	}
	if err := decodeStrict(b, RunLogMaxLine, "run log line", &l); err != nil {
		return l, true, err
	}
	if err := checkKeys(b, "run log line"); err != nil {
		return l, true, err
	}
	if l.Run != runID {
		return l, true, fmt.Errorf("run log line %d is of run %q, not %s", l.N, truncate(l.Run, 30), runID)
	}
	if l.N == 0 || (len(l.Lines) > 0) == (l.Exit != nil) {
		return l, true, fmt.Errorf("run log line %d must carry either lines or an exit", l.N)
	}
	for i, ln := range l.Lines {
		if ln.Stream != Stdout && ln.Stream != Stderr {
			return l, true, fmt.Errorf("run log line %d piece %d has stream %q", l.N, i, truncate(string(ln.Stream), 20))
		}
		if _, err := ln.Bytes(); err != nil {
			return l, true, fmt.Errorf("run log line %d piece %d: %w", l.N, i, err)
		}
	}
	if l.Exit != nil {
		if err := ValidateOutputs(l.Exit.Outputs); err != nil {
			return l, true, fmt.Errorf("run log line %d: %w", l.N, err)
		}
	}
	return l, true, nil
}

func base64Std(p []byte) string { return base64.StdEncoding.EncodeToString(p) }

// RunLogStream is the CloudWatch Logs stream of a run's task, as the awslogs
// driver names it: "<prefix>/<container>/<task id>", where the stack's task
// definitions use the job name as prefix and the container is "runner".
func RunLogStream(job, container, taskARN string) string {
	id := taskARN
	if i := strings.LastIndexByte(taskARN, '/'); i >= 0 {
		id = taskARN[i+1:]
	}
	return job + "/" + container + "/" + id
}
