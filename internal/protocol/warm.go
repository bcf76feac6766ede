package protocol

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Warm single-use runners (docs/DISPATCHER.md, "Warm runners"). A job with
// `warm: N` in the catalogue has N tasks of its pinned task definition
// started ahead of time, each a *slot*: its runner waits on an inbox (an
// SQS queue of its own that only the dispatcher may write to) for one
// Assignment, runs that one run exactly as a cold runner would, and exits.

// EnvWarmInbox, set on a slot's task, puts the runner in warm mode: it
// long-polls this queue URL for its one assignment instead of reading the
// run from its environment (runner/warm.go).
const EnvWarmInbox = "DEPLOY_BROKER_WARM_INBOX"

// EnvWarmIdle is how long a warm runner waits for an assignment before it
// exits (a Go duration; default 12h), so that no runner's image or
// credentials grow old: the dispatcher replaces it. Operators and tests
// only: the broker does not set it.
const EnvWarmIdle = "DEPLOY_BROKER_WARM_IDLE"

// WarmCommand is the container command a slot's task is started with: its
// argv comes with the assignment.
const WarmCommand = "deploy-broker-warm-slot"

// warmSlotPrefix starts every slot id: "warm-" + a ULID (31 characters,
// within ECS's 64 for a clientToken and 128 for startedBy). A slot id is
// never a run id, so an ECS event of a slot's task is never read as a run's.
const warmSlotPrefix = "warm-"

// NewWarmSlotID returns a fresh slot id.
func NewWarmSlotID(now time.Time) string { return warmSlotPrefix + NewRunID(now) }

// ValidWarmSlotID reports whether id is a slot id.
func ValidWarmSlotID(id string) bool {
	rest, ok := strings.CutPrefix(id, warmSlotPrefix)
	return ok && ValidateRunID(rest) == nil
}

// WarmSlotTime is when a slot id was made.
func WarmSlotTime(id string) (time.Time, error) {
	return RunIDTime(strings.TrimPrefix(id, warmSlotPrefix))
}

// InboxName is the name of a slot's inbox: "<broker>-warm-<ULID>", a
// standard queue (no ".fifo"), so that it never matches a run queue's name
// and the job guard can deny every action on "<broker>-warm-*".
func InboxName(broker, slot string) string { return broker + "-" + slot }

// InboxNamePattern is the pattern of every inbox name of broker (IAM, the
// job guard, local mode's mirror).
func InboxNamePattern(broker string) string { return broker + "-" + warmSlotPrefix + "*" }

// IsInboxName reports whether a queue name is one of broker's inboxes.
func IsInboxName(broker, name string) bool {
	slot, ok := strings.CutPrefix(name, broker+"-")
	return ok && ValidWarmSlotID(slot)
}

// InboxWriteActions are what only the dispatcher may do on an inbox: send
// the assignment, and manage the queue (which could lift its Denies). The
// inbox policy (dispatcher/inbox.go), the runners' broker guard (infra)
// and local mode's mirror (localbroker/inboxmirror.go) all use this list.
var InboxWriteActions = []string{"sqs:SendMessage", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:AddPermission",
	"sqs:RemovePermission", "sqs:TagQueue", "sqs:UntagQueue", "sqs:PurgeQueue"}

// InboxReadActions are what only the broker's roles may do on an inbox (of
// which only the runners' task roles are granted them, each on its own
// job's inboxes).
var InboxReadActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

// Start says how a run's task started, in Accepted.Start.
const (
	StartWarm = "warm" // the run was assigned to a warm runner that was already running
	StartCold = "cold" // a new task was started for the run (RunTask)
)

// MaxAssignmentBytes bounds an assignment: one SQS message.
const MaxAssignmentBytes = 256 * 1024

// maxAssignmentArgs bounds the argv of an assignment.
const maxAssignmentArgs = 1024

// Assignment is the one message the dispatcher sends to a slot's inbox: the
// run the warm runner is to run, exactly what RunTask's container overrides
// carry for a cold runner (the environment the runner reads, and the job's
// argv). The runner checks it is for its own job and runs it as a cold
// runner runs the same values.
type Assignment struct {
	V         int       `json:"v"`
	Slot      string    `json:"slot"`
	RunID     string    `json:"run_id"`
	QueueURL  string    `json:"queue_url"`
	Job       string    `json:"job"`
	Deadline  time.Time `json:"deadline"`
	Heartbeat string    `json:"heartbeat"` // a Go duration (EnvHeartbeat)
	Grace     string    `json:"grace"`     // a Go duration (EnvGrace)
	// Requester is the verified requester (EnvRequester).
	Requester string `json:"requester,omitempty"`
	// Redact names the variables whose values are secret (EnvRedact).
	Redact []string `json:"redact,omitempty"`
	// Secrets are the values of the parameters declared secret, by
	// parameter name (EnvParamPrefix + the name in upper case).
	Secrets map[string]string `json:"secrets,omitempty"`
	Argv    []string          `json:"argv"`
}

// AssignmentVersion is the version of assignments.
const AssignmentVersion = 1

// EncodeAssignment renders an assignment.
func EncodeAssignment(a Assignment) ([]byte, error) {
	a.V = AssignmentVersion
	if err := a.Validate(); err != nil {
		return nil, err
	}
	b, err := marshal(a)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxAssignmentBytes {
		return nil, fmt.Errorf("the assignment of run %s is %d bytes, over the %d-byte limit: %w", a.RunID, len(b), MaxAssignmentBytes, ErrTooLarge)
	}
	return b, nil
}

// DecodeAssignment strictly decodes and validates an assignment.
func DecodeAssignment(b []byte) (*Assignment, error) {
	var a Assignment
	if err := decodeStrict(b, MaxAssignmentBytes, "assignment", &a); err != nil {
		return nil, err
	}
	if err := checkKeys(b, "assignment"); err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// Validate checks an assignment's structure.
func (a *Assignment) Validate() error {
	switch {
	case a.V != AssignmentVersion:
		return fmt.Errorf("assignment has version %d; this runner speaks version %d (the runner image and the broker differ: redeploy)", a.V, AssignmentVersion)
	case !ValidWarmSlotID(a.Slot):
		return fmt.Errorf("assignment names slot %q, which is not a slot id", truncate(a.Slot, 40))
	case ValidateRunID(a.RunID) != nil:
		return fmt.Errorf("assignment: %w", ValidateRunID(a.RunID))
	case !ValidJobName(a.Job):
		return fmt.Errorf("assignment names job %q, which is not a job name", truncate(a.Job, 80))
	case a.Deadline.IsZero():
		return fmt.Errorf("assignment of run %s has no deadline", a.RunID)
	case len(a.Argv) == 0 || a.Argv[0] == "":
		return fmt.Errorf("assignment of run %s has no command", a.RunID)
	case len(a.Argv) > maxAssignmentArgs:
		return fmt.Errorf("assignment of run %s has %d arguments, more than %d", a.RunID, len(a.Argv), maxAssignmentArgs)
	case len(a.Secrets) > MaxParams:
		return fmt.Errorf("assignment of run %s has %d secret parameters, more than %d", a.RunID, len(a.Secrets), MaxParams)
	}
	if u, err := url.Parse(a.QueueURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("assignment of run %s has queue URL %q, which is not an http(s) URL", a.RunID, truncate(a.QueueURL, 80))
	}
	for _, d := range []struct{ name, v string }{{"heartbeat", a.Heartbeat}, {"grace", a.Grace}} {
		if v, err := time.ParseDuration(d.v); err != nil || v < 0 {
			return fmt.Errorf("assignment of run %s has %s %q, which is not a duration", a.RunID, d.name, truncate(d.v, 40))
		}
	}
	for k := range a.Secrets {
		if !ValidParamName(k) {
			return fmt.Errorf("assignment of run %s has secret parameter %q, which is not a parameter name", a.RunID, truncate(k, 40))
		}
	}
	for _, n := range a.Redact {
		if n == "" || strings.ContainsAny(n, ",=\x00") {
			return fmt.Errorf("assignment of run %s redacts %q, which is not a variable name", a.RunID, truncate(n, 40))
		}
	}
	for _, f := range []string{a.Requester, a.QueueURL} {
		if c, bad := FindControl(f); bad {
			return fmt.Errorf("assignment of run %s holds a control character (%s)", a.RunID, DescribeControl(c))
		}
	}
	return nil
}

// Env is the assignment as the runner's environment ("NAME=value"): the
// variables RunTask's container overrides set for a cold runner.
func (a *Assignment) Env() []string {
	env := []string{
		EnvRunID + "=" + a.RunID,
		EnvQueueURL + "=" + a.QueueURL,
		EnvJob + "=" + a.Job,
		EnvDeadline + "=" + a.Deadline.UTC().Format(time.RFC3339),
		EnvHeartbeat + "=" + a.Heartbeat,
		EnvGrace + "=" + a.Grace,
		EnvRequester + "=" + a.Requester,
	}
	names := make([]string, 0, len(a.Secrets))
	for k := range a.Secrets {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		env = append(env, EnvParamPrefix+strings.ToUpper(k)+"="+a.Secrets[k])
	}
	if len(a.Redact) > 0 {
		env = append(env, EnvRedact+"="+strings.Join(a.Redact, ","))
	}
	return env
}
