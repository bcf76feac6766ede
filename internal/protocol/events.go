package protocol

// Lifecycle events: the dispatcher publishes every transition of a run on
// the account's default EventBridge bus with this source and detail type.
// The stack allows events:PutEvents only with this source (events:source).
const (
	EventSource     = "deploy-broker"
	EventDetailType = "Deploy Run State Change"
)

// Run states carried by lifecycle events (RunEvent.State).
const (
	EventRequested        = "requested"
	EventRejected         = "rejected"
	EventAwaitingApproval = "awaiting-approval"
	EventQueued           = "queued"
	EventStarted          = "started"
	EventFinished         = "finished"
	EventCancelled        = "cancelled"
)

// Outcomes of a finished run (RunEvent.Outcome).
const (
	OutcomeSucceeded = "succeeded" // the job exited 0
	OutcomeFailed    = "failed"    // the job exited non-zero
	OutcomeLost      = "lost"      // the task stopped without the job's exit code
)

// RunEvent is the detail of a lifecycle event. It never carries parameter
// values: only the job, the requester and what the broker decided.
type RunEvent struct {
	RunID string `json:"run_id"`
	Job   string `json:"job"`
	State string `json:"state"`
	// Requester is the verified principal (the ARN the request's proof
	// verified); ClaimedRequester what the client said of itself (CI,
	// repository, actor), never used to decide anything.
	Requester        string `json:"requester,omitempty"`
	ClaimedRequester string `json:"claimed_requester,omitempty"`
	Account          string `json:"account,omitempty"`
	AccountAlias     string `json:"account_alias,omitempty"`
	Region           string `json:"region,omitempty"`
	// Time is when the broker saw the transition (RFC 3339).
	Time       string `json:"time"`
	RejectCode string `json:"reject_code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	TaskARN    string `json:"task_arn,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	StopCode   string `json:"stop_code,omitempty"`
	// LogExitCode is the exit code the run log's exit record gave, present
	// only when it disagrees with ExitCode (the container's, as ECS reports
	// it, which counts).
	LogExitCode *int `json:"log_exit_code,omitempty"`
	// DurationSeconds is from the claim of the run to its end (finished,
	// cancelled, rejected).
	DurationSeconds *float64 `json:"duration_seconds,omitempty"`
}
