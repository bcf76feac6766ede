package protocol

import (
	"fmt"
	"time"
)

// RecordType names a feedback record.
type RecordType string

// Feedback record types.
const (
	TypeAccepted  RecordType = "accepted"
	TypeRejected  RecordType = "rejected"
	TypeTask      RecordType = "task"
	TypeStarted   RecordType = "started"
	TypeOutput    RecordType = "output"
	TypeHeartbeat RecordType = "heartbeat"
	TypeExit      RecordType = "exit"
)

// Source names who wrote a record. Each source numbers its records from 1.
type Source string

// Record sources.
const (
	// SourceDispatcher writes accepted or rejected, always with Seq 1.
	SourceDispatcher Source = "dispatcher"
	// SourceECS is the dispatcher forwarding ECS task state changes; Seq is the
	// task's version from the event, so later states have larger numbers.
	SourceECS Source = "ecs"
	// SourceRunner writes started, output, heartbeat and exit, numbered 1, 2, 3…
	// without gaps.
	SourceRunner Source = "runner"
)

// Record is one feedback record. Exactly one payload field is set, the one
// named by Type.
//
// Adding a record type touches, in order:
//
//  1. here (record.go): a Type… constant, the payload struct, its field on
//     Record, its case in validate and its entry in validate's "present"
//     list; the decoder tests and seeds (message_decode_test.go,
//     fuzz_test.go);
//  2. its writer: the runner's batcher (internal/runner/batcher.go) for a
//     runner record, or the dispatcher (internal/dispatcher/launch.go through
//     d.record, taskevent.go for task records);
//  3. the trigger's watch (internal/trigger/watch_record.go, onRecord): what
//     the record changes in the run and whether it ends it
//     (watch_outcome.go); runner records go through sequencer.go by Src;
//  4. the trigger's output modes: describeRecord in output.go (plain),
//     output_terminal.go and output_github.go (output_json.go prints every
//     record as it is), and their golden files in internal/trigger/testdata;
//  5. the documentation of the records: docs/RUNNER.md (runner records) or
//     docs/DISPATCHER.md (dispatcher records), and docs/TRIGGER.md if the
//     trigger shows or acts on it.
type Record struct {
	Type RecordType `json:"type"`
	Src  Source     `json:"src"`
	Seq  uint64     `json:"seq"`
	Time time.Time  `json:"t"`

	Accepted  *Accepted  `json:"accepted,omitempty"`
	Rejected  *Rejected  `json:"rejected,omitempty"`
	Task      *Task      `json:"task,omitempty"`
	Started   *Started   `json:"started,omitempty"`
	Output    *Output    `json:"output,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
	Exit      *Exit      `json:"exit,omitempty"`
	Queued    *Queued    `json:"queued,omitempty"`
}

// Accepted says the dispatcher launched the run.
type Accepted struct {
	Job          string `json:"job"`
	TaskARN      string `json:"task_arn"`
	Account      string `json:"account"`
	AccountAlias string `json:"account_alias,omitempty"`
	Region       string `json:"region,omitempty"`
	// RequestedBy is the verified principal that requested the run: the ARN
	// STS returned for the request's proof of identity.
	RequestedBy string `json:"requested_by,omitempty"`
	// ApprovedBy is the verified principal of the approver, for a run of a
	// job with approvers (docs/DISPATCHER.md, Approvals).
	ApprovedBy string `json:"approved_by,omitempty"`
	// Start is StartWarm or StartCold, and Warm the job's warm runners
	// (`warm: N`) of which WarmBusy were busy or starting when the run
	// came, for a job with warm runners only: absent otherwise, so that a
	// deploy-trigger that predates warm runners (its decoder refuses
	// unknown fields) still reads the accepted record of every other job.
	Start    string `json:"start,omitempty"`
	Warm     int    `json:"warm,omitempty"`
	WarmBusy int    `json:"warm_busy,omitempty"`
}

// Rejection codes: a machine-readable category for Rejected.Code.
const (
	RejectExpired    = "expired"
	RejectReplayed   = "replayed"
	RejectUnknownJob = "unknown-job"
	RejectBadParams  = "bad-params"
	RejectLaunch     = "launch-failed"
	RejectInvalid    = "invalid"
	// RejectUnauthorized: the verified principal may not run this job.
	RejectUnauthorized = "unauthorized"
	// RejectCancelled: a cancel for the run reached the broker before the
	// run request did; nothing was launched.
	RejectCancelled = "cancelled"
	// RejectThrottled: the verified principal already has as many open runs
	// as broker.max_open_runs_per_principal allows; nothing was launched.
	RejectThrottled = "throttled"
	// RejectKeyInUse: the request's idempotency key belongs to another
	// verified owner (a role, whatever the session; a user), the first to
	// use it; nothing was launched.
	RejectKeyInUse = "key-in-use"
)

// Rejected says the dispatcher refused the run; Reason is one line for humans.
type Rejected struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// Task is an ECS lifecycle change of the run's task.
type Task struct {
	TaskARN       string `json:"task_arn"`
	Status        string `json:"status"` // ECS lastStatus: PROVISIONING, PENDING, RUNNING, STOPPED…
	DesiredStatus string `json:"desired_status,omitempty"`
	StopCode      string `json:"stop_code,omitempty"` // e.g. TaskFailedToStart, EssentialContainerExited
	StoppedReason string `json:"stopped_reason,omitempty"`
	ExitCode      *int   `json:"exit_code,omitempty"` // the runner container's exit code, when known
}

// Started says the runner launched the job's command.
type Started struct {
	Job               string `json:"job,omitempty"`
	HeartbeatSeconds  int    `json:"heartbeat_s"`
	DeadlineUnixMilli int64  `json:"deadline_ms,omitempty"`
}

// Heartbeat says the runner is alive; counts are totals so far.
type Heartbeat struct {
	Lines int64 `json:"lines"`
	Bytes int64 `json:"bytes"`
}

// Exit reasons.
const (
	ReasonCompleted   = "completed"
	ReasonTimeout     = "timeout"
	ReasonCancelled   = "cancelled"
	ReasonRunnerError = "runner-error"
)

// Exit is the runner's last record.
type Exit struct {
	Code       int    `json:"code"`             // the job's exit code; -1 when killed by a signal or never started
	Signal     Signal `json:"signal,omitempty"` // the Linux signal number that ended the job (exitcode.go)
	Reason     string `json:"reason"`
	Message    string `json:"message,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Lines      int64  `json:"lines"`
	Bytes      int64  `json:"bytes"`
	// Outputs are the name=value pairs the job wrote to the file named by
	// $DEPLOY_BROKER_OUTPUT, validated and redacted by the runner (see
	// outputs.go). Absent when the job wrote none, so that a trigger that
	// predates outputs still reads the exit record of every other job.
	Outputs []JobOutput `json:"outputs,omitempty"`
}

// Output carries job output lines in the order the job wrote them.
type Output struct {
	Lines []Line `json:"lines"`
}

// Stream is the stream a line was written to.
type Stream string

// Streams.
const (
	Stdout Stream = "out"
	Stderr Stream = "err"
)

// Line is a piece of job output. Text holds the bytes when they are valid
// UTF-8 that SQS can carry once JSON-escaped; otherwise B64 holds them in
// base64 (see [EncodeText]). Cont is set when the piece does not end with a
// newline: it continues in the next piece of the same stream (a long line
// split in pieces, or the last bytes of a stream without a trailing newline).
type Line struct {
	Stream Stream `json:"s"`
	Millis int64  `json:"d"` // when it was read: milliseconds after the record's time
	Text   string `json:"x,omitempty"`
	B64    string `json:"b,omitempty"`
	Cont   bool   `json:"c,omitempty"`
}

// validate checks the record's common fields and that exactly the payload
// named by Type is present.
func (r *Record) validate() error {
	switch r.Src {
	case SourceDispatcher, SourceECS, SourceRunner:
	default:
		return fmt.Errorf("record source %q is unknown", truncate(string(r.Src), 40))
	}
	if r.Seq == 0 {
		return fmt.Errorf("%s record from %s has no sequence number", r.Type, r.Src)
	}
	if r.Time.IsZero() {
		return fmt.Errorf("%s record %s/%d has no time", r.Type, r.Src, r.Seq)
	}
	present := 0
	for _, p := range []bool{r.Accepted != nil, r.Rejected != nil, r.Task != nil, r.Started != nil,
		r.Output != nil, r.Heartbeat != nil, r.Exit != nil, r.Queued != nil} {
		if p {
			present++
		}
	}
	var ok bool
	switch r.Type {
	case TypeAccepted:
		ok = r.Accepted != nil
		if ok && r.Accepted.Start != "" && r.Accepted.Start != StartWarm && r.Accepted.Start != StartCold {
			return fmt.Errorf("accepted record says the run started %q; expected warm or cold", truncate(r.Accepted.Start, 20))
		}
	case TypeRejected:
		ok = r.Rejected != nil
	case TypeTask:
		ok = r.Task != nil
	case TypeStarted:
		ok = r.Started != nil
	case TypeOutput:
		ok = r.Output != nil
		if ok {
			for i, l := range r.Output.Lines {
				if l.Stream != Stdout && l.Stream != Stderr {
					return fmt.Errorf("output record %d line %d has stream %q; expected out or err", r.Seq, i, truncate(string(l.Stream), 20))
				}
				if l.Text != "" && l.B64 != "" {
					return fmt.Errorf("output record %d line %d has both text and base64", r.Seq, i)
				}
			}
		}
	case TypeHeartbeat:
		ok = r.Heartbeat != nil
	case TypeExit:
		ok = r.Exit != nil
		if ok {
			if err := ValidateOutputs(r.Exit.Outputs); err != nil {
				return fmt.Errorf("exit record %d: %w", r.Seq, err)
			}
		}
	case TypeQueued:
		ok = r.Queued != nil && r.Src == SourceDispatcher
	default:
		return fmt.Errorf("record type %q is unknown", truncate(string(r.Type), 40))
	}
	if !ok || present != 1 {
		return fmt.Errorf("%s record %s/%d must carry exactly its own %q payload", r.Type, r.Src, r.Seq, r.Type)
	}
	for _, f := range r.textFields() {
		if c, bad := FindControl(f.value); bad {
			return fmt.Errorf("%s record %s/%d field %s contains a control character (%s)", r.Type, r.Src, r.Seq, f.name, DescribeControl(c))
		}
	}
	return nil
}

type textField struct{ name, value string }

// textFields are the record's strings that the trigger prints as its own
// lines: every string of the payload but the job's output. None may hold a
// control character ([IsControl]): the job can send records to its own
// feedback queue, and a line break or an escape there would let it write
// GitHub workflow commands or terminal escapes in the trigger's name. The
// broker writes these fields on one line (ECS stop reasons through
// [StopReason]).
func (r *Record) textFields() []textField {
	switch {
	case r.Accepted != nil:
		a := r.Accepted
		return []textField{{"job", a.Job}, {"task_arn", a.TaskARN}, {"account", a.Account}, {"account_alias", a.AccountAlias}, {"region", a.Region}, {"requested_by", a.RequestedBy}, {"start", a.Start}}
	case r.Rejected != nil:
		return []textField{{"code", r.Rejected.Code}, {"reason", r.Rejected.Reason}}
	case r.Task != nil:
		t := r.Task
		return []textField{{"task_arn", t.TaskARN}, {"status", t.Status}, {"desired_status", t.DesiredStatus}, {"stop_code", t.StopCode}, {"stopped_reason", t.StoppedReason}}
	case r.Started != nil:
		return []textField{{"job", r.Started.Job}}
	case r.Exit != nil:
		return []textField{{"reason", r.Exit.Reason}, {"message", r.Exit.Message}}
	}
	return nil
}
