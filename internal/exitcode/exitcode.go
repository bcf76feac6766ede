// Package exitcode is deploy-trigger's exit-code contract: an error that
// knows the code the process should exit with. main reads it with errors.As;
// everything below main returns errors and never calls os.Exit.
//
// The job's own exit code passes through unchanged (a job killed by signal N
// gives 128+N, as in a shell). The broker's own outcomes use the reserved
// block 240–248 so CI can tell "the job failed" from "the broker could not
// run it". A job that itself exits with 240–248 is indistinguishable by code
// alone; --output json and the GitHub outputs say which it was.
package exitcode

import (
	"errors"
	"fmt"
)

// Reserved exit codes.
const (
	OK           = 0
	Usage        = 240 // bad flags, parameters, environment or configuration
	Rejected     = 241 // the dispatcher refused the request (unknown job, bad parameter, expired…)
	StartFailed  = 242 // the task or the job's command could not start
	LostRunner   = 243 // the runner stopped sending heartbeats or died without an exit record
	Timeout      = 244 // the job ran past its catalogue timeout, or the trigger's overall timeout passed
	Cancelled    = 245 // the run was cancelled (Ctrl-C, CI abort)
	StartTimeout = 246 // nothing arrived from the broker before the start timeout
	Broker       = 247 // AWS or broker error: publish failed, access denied, throttled past retries
	Safety       = 248 // stopped for safety: confirmation declined, or the run landed in an unexpected account
)

// Name returns a short name for a reserved code ("" for others).
func Name(code int) string {
	switch code {
	case OK:
		return "ok"
	case Usage:
		return "usage"
	case Rejected:
		return "rejected"
	case StartFailed:
		return "start-failed"
	case LostRunner:
		return "lost-runner"
	case Timeout:
		return "timeout"
	case Cancelled:
		return "cancelled"
	case StartTimeout:
		return "start-timeout"
	case Broker:
		return "broker-error"
	case Safety:
		return "safety-stop"
	}
	return ""
}

// Error is an error with an exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New wraps err with code.
func New(code int, err error) error { return &Error{Code: code, Err: err} }

// Errorf formats an error with code.
func Errorf(code int, format string, a ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, a...)}
}

// JobExit is the job's own exit, passed through: it is not a failure of the
// broker and carries no message of its own.
type JobExit struct{ Code int }

func (e *JobExit) Error() string { return fmt.Sprintf("the job exited with code %d", e.Code) }

// Code maps an error to a process exit code: nil is 0, a JobExit its code,
// an Error its code, anything else Broker.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var je *JobExit
	if errors.As(err, &je) {
		return je.Code
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Broker
}
