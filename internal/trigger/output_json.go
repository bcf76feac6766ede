package trigger

import (
	"encoding/json"
	"io"
	"time"
	"unicode/utf8"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// jsonPrinter writes one JSON object a line on stdout, for machines. Every
// object has "event": target, dry-run, notice, record (a feedback record as
// it came, except output), line (one piece of job output), result.
type jsonPrinter struct {
	enc   *json.Encoder
	lines uint64 // line events so far: the last one's n
}

func newJSONPrinter(stdout io.Writer) *jsonPrinter {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	return &jsonPrinter{enc: enc}
}

type jsonTarget struct {
	Event        string              `json:"event"`
	RunID        string              `json:"run_id"`
	Job          string              `json:"job"`
	Params       map[string]string   `json:"params,omitempty"`
	TopicARN     string              `json:"topic_arn"`
	Account      string              `json:"account"`
	AccountAlias string              `json:"account_alias,omitempty"`
	Region       string              `json:"region"`
	Environment  string              `json:"environment,omitempty"`
	Source       string              `json:"source,omitempty"`
	Requester    *protocol.Requester `json:"requester,omitempty"`
}

// jsonLine is one piece of the job's output. n is its identity: 1, 2, 3…
// in the order printed (one stream's pieces in the order the job wrote
// them; across the two, the order the runner read them in). seq is the
// runner record the piece came in, which holds pieces of both streams, so
// it repeats.
type jsonLine struct {
	Event  string    `json:"event"`
	N      uint64    `json:"n"`
	Seq    uint64    `json:"seq"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"t"`
	Text   string    `json:"text,omitempty"`
	B64    string    `json:"b64,omitempty"`
	Cont   bool      `json:"cont,omitempty"`
}

type jsonResult struct {
	Event        string `json:"event"`
	RunID        string `json:"run_id,omitempty"`
	Job          string `json:"job,omitempty"`
	Outcome      string `json:"outcome"`
	ExitCode     int    `json:"exit_code"`
	Message      string `json:"message,omitempty"`
	TaskARN      string `json:"task_arn,omitempty"`
	Account      string `json:"account,omitempty"`
	AccountAlias string `json:"account_alias,omitempty"`
	Region       string `json:"region,omitempty"`
	RequestedBy  string `json:"requested_by,omitempty"`
	DurationMS   int64  `json:"duration_ms"`
	Lines        int64  `json:"lines"`
	Bytes        int64  `json:"bytes"`
	// Outputs are the job's outputs by name (absent when it wrote none).
	Outputs map[string]string `json:"outputs,omitempty"`
}

func (p *jsonPrinter) emit(v any) { _ = p.enc.Encode(v) }

func (p *jsonPrinter) target(t *Target) {
	acct := t.Account
	if acct == "" {
		acct = t.Topic.Account
	}
	p.emit(jsonTarget{Event: "target", RunID: t.RunID, Job: t.Job, Params: t.Params, TopicARN: t.Topic.ARN, Account: acct,
		AccountAlias: t.AccountAlias, Region: t.Topic.Region, Environment: t.Environment, Source: t.source(), Requester: t.Requester})
}

func (p *jsonPrinter) dryRun(req []byte, identity string) {
	p.emit(struct {
		Event    string          `json:"event"`
		Identity string          `json:"identity"`
		Request  json.RawMessage `json:"request"`
	}{"dry-run", identity, json.RawMessage(compactJSON(req))})
}

func compactJSON(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func (p *jsonPrinter) notice(msg string) {
	p.emit(struct {
		Event   string `json:"event"`
		Message string `json:"message"`
	}{"notice", msg})
}

func (p *jsonPrinter) record(r protocol.Record) error {
	if r.Type != protocol.TypeOutput {
		p.emit(struct {
			Event string `json:"event"`
			protocol.Record
		}{"record", r})
		return nil
	}
	for _, l := range r.Output.Lines {
		b, err := l.Bytes()
		if err != nil {
			return err
		}
		p.lines++
		jl := jsonLine{Event: "line", N: p.lines, Seq: r.Seq, Stream: string(l.Stream), Time: lineTime(r, l).UTC(), Cont: l.Cont}
		if utf8.Valid(b) {
			jl.Text = string(b)
		} else {
			jl.B64 = l.B64
		}
		p.emit(jl)
	}
	return nil
}

func (p *jsonPrinter) tick(time.Time) {}

func (p *jsonPrinter) result(r *Result) { p.emit(resultRecord(r)) }

// resultRecord is the JSON form of a run's result: the last record of
// --output json and the content of --result-file.
func resultRecord(r *Result) jsonResult {
	return jsonResult{Event: "result", RunID: r.RunID, Job: r.Job, Outcome: r.Outcome, ExitCode: r.Code, Message: r.Message,
		TaskARN: r.TaskARN, Account: r.Account, AccountAlias: r.AccountAlias, Region: r.Region, RequestedBy: r.RequestedBy,
		DurationMS: r.Duration.Milliseconds(), Lines: r.Lines, Bytes: r.Bytes, Outputs: outputsMap(r.Outputs)}
}
