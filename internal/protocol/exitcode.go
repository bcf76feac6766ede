package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
)

// The one mapping from a run's end to a shell exit code. The runner's own
// process exit (runner/run.go), the trigger's live watch (watch_outcome.go)
// and attach (cmd_logs.go) all take their code from [ExitCode], so the same
// run gives the same code whichever way it was followed.

// Signal is the number of the Linux signal that ended the job (0: none). The
// runner is a Linux task, so the numbers are Linux's whatever the platform
// that reads them. The exit record carries the number; it used to carry Go's
// name for it ("killed", "bad system call"), which is still decoded.
type Signal int

// linuxSignals are Linux's signals 1–31: the short name, and Go's
// description (syscall.Signal.String on Linux), which old runners wrote.
var linuxSignals = [32]struct{ name, desc string }{
	1: {"SIGHUP", "hangup"}, 2: {"SIGINT", "interrupt"}, 3: {"SIGQUIT", "quit"}, 4: {"SIGILL", "illegal instruction"},
	5: {"SIGTRAP", "trace/breakpoint trap"}, 6: {"SIGABRT", "aborted"}, 7: {"SIGBUS", "bus error"},
	8: {"SIGFPE", "floating point exception"}, 9: {"SIGKILL", "killed"}, 10: {"SIGUSR1", "user defined signal 1"},
	11: {"SIGSEGV", "segmentation fault"}, 12: {"SIGUSR2", "user defined signal 2"}, 13: {"SIGPIPE", "broken pipe"},
	14: {"SIGALRM", "alarm clock"}, 15: {"SIGTERM", "terminated"}, 16: {"SIGSTKFLT", "stack fault"},
	17: {"SIGCHLD", "child exited"}, 18: {"SIGCONT", "continued"}, 19: {"SIGSTOP", "stopped (signal)"},
	20: {"SIGTSTP", "stopped"}, 21: {"SIGTTIN", "stopped (tty input)"}, 22: {"SIGTTOU", "stopped (tty output)"},
	23: {"SIGURG", "urgent I/O condition"}, 24: {"SIGXCPU", "CPU time limit exceeded"},
	25: {"SIGXFSZ", "file size limit exceeded"}, 26: {"SIGVTALRM", "virtual timer expired"},
	27: {"SIGPROF", "profiling timer expired"}, 28: {"SIGWINCH", "window changed"}, 29: {"SIGIO", "I/O possible"},
	30: {"SIGPWR", "power failure"}, 31: {"SIGSYS", "bad system call"},
}

// maxSignal bounds a signal number: 128+N must stay a shell exit code.
const maxSignal = 127

// Description is Go's description of the signal on Linux ("killed"), the
// form old runners wrote in the exit record.
func (s Signal) Description() string {
	if s > 0 && int(s) < len(linuxSignals) {
		return linuxSignals[s].desc
	}
	return "signal " + strconv.Itoa(int(s))
}

// String is the signal's name, "SIGKILL", or "signal 34" past the classic 31.
func (s Signal) String() string {
	if s > 0 && int(s) < len(linuxSignals) {
		return linuxSignals[s].name
	}
	return "signal " + strconv.Itoa(int(s))
}

// ParseSignal reads a signal as old exit records and users wrote it: Go's
// description ("killed"), a name with or without SIG ("SIGKILL", "KILL"), a
// number ("9") or "signal 9".
func ParseSignal(v string) (Signal, error) {
	t := strings.TrimSpace(v)
	for n := 1; n < len(linuxSignals); n++ {
		s := linuxSignals[n]
		if strings.EqualFold(t, s.desc) || strings.EqualFold(t, s.name) || strings.EqualFold("SIG"+t, s.name) {
			return Signal(n), nil
		}
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(t, "signal ")); err == nil && n > 0 && n <= maxSignal {
		return Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q: want a Linux signal number 1-%d or its name (SIGKILL, killed)", v, maxSignal)
}

// UnmarshalJSON takes the number, or the name an old runner wrote.
func (s *Signal) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 || n > maxSignal {
			return fmt.Errorf("signal %d is not a Linux signal number (1-%d)", n, maxSignal)
		}
		*s = Signal(n)
		return nil
	}
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("signal must be a number (or, from an old runner, a name), not %s", b)
	}
	if name == "" {
		*s = 0
		return nil
	}
	v, err := ParseSignal(name)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ExitCode is the shell exit code of a run that ended with exit record x,
// deploy-trigger's and the runner's alike:
//
//   - completed: the job's own code; 128+N when signal N ended it (every
//     signal: SIGKILL 137, SIGXCPU 152, SIGSYS 159), except that a run a
//     cancel was asked for (cancelAsked) and that ended by a signal is
//     cancelled, 245, the code the cancel itself gives; 1 when the runner
//     knows neither (the job failed, its code unknown);
//   - timeout 244, cancelled 245, runner-error 242 (the command could not
//     start); an unknown reason 243, a runner this trigger does not know.
func ExitCode(x Exit, cancelAsked bool) int {
	switch x.Reason {
	case ReasonCompleted:
		switch {
		case x.Signal > 0 && cancelAsked:
			return exitcode.Cancelled
		case x.Signal > 0:
			return 128 + int(x.Signal)
		case x.Code >= 0:
			return x.Code
		}
		return 1
	case ReasonTimeout:
		return exitcode.Timeout
	case ReasonCancelled:
		return exitcode.Cancelled
	case ReasonRunnerError:
		return exitcode.StartFailed
	}
	return exitcode.LostRunner
}
