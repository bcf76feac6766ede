package protocol

import (
	"encoding/json"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
)

// Every signal gives 128+N. The trigger used to map 16 of Linux's 31
// signals to 9: a seccomp kill (SIGSYS) reported 137, as an OOM kill would.
func TestExitCodeEverySignalIs128PlusN(t *testing.T) {
	for n := 1; n <= 31; n++ {
		x := Exit{Code: -1, Signal: Signal(n), Reason: ReasonCompleted}
		if got := ExitCode(x, false); got != 128+n {
			t.Errorf("signal %d (%s): code %d, want %d", n, Signal(n), got, 128+n)
		}
	}
	if got := ExitCode(Exit{Code: -1, Signal: 31, Reason: ReasonCompleted}, false); got != 159 {
		t.Errorf("SIGSYS: %d, want 159", got)
	}
	if got := ExitCode(Exit{Code: -1, Signal: 24, Reason: ReasonCompleted}, false); got != 152 {
		t.Errorf("SIGXCPU: %d, want 152", got)
	}
}

func TestExitCodeRules(t *testing.T) {
	for _, tc := range []struct {
		x           Exit
		cancelAsked bool
		want        int
	}{
		{Exit{Code: 0, Reason: ReasonCompleted}, false, 0},
		{Exit{Code: 3, Reason: ReasonCompleted}, true, 3}, // exited by itself: its code even after a cancel
		{Exit{Code: -1, Signal: 15, Reason: ReasonCompleted}, false, 143},
		{Exit{Code: -1, Signal: 15, Reason: ReasonCompleted}, true, exitcode.Cancelled},
		{Exit{Code: -1, Reason: ReasonCompleted}, false, 1},
		{Exit{Code: -1, Signal: 9, Reason: ReasonTimeout}, false, exitcode.Timeout},
		{Exit{Code: -1, Signal: 15, Reason: ReasonCancelled}, false, exitcode.Cancelled},
		{Exit{Code: -1, Reason: ReasonRunnerError}, false, exitcode.StartFailed},
		{Exit{Code: 0, Reason: "exploded"}, false, exitcode.LostRunner},
	} {
		if got := ExitCode(tc.x, tc.cancelAsked); got != tc.want {
			t.Errorf("ExitCode(%+v, %v) = %d, want %d", tc.x, tc.cancelAsked, got, tc.want)
		}
	}
}

// The exit record carries the number; an old runner's name still decodes.
func TestSignalDecodesNumberAndOldName(t *testing.T) {
	for in, want := range map[string]Signal{`31`: 31, `"bad system call"`: 31, `"CPU time limit exceeded"`: 24,
		`"killed"`: 9, `"terminated"`: 15, `"SIGINT"`: 2, `"KILL"`: 9, `"6"`: 6, `"signal 34"`: 34, `""`: 0, `0`: 0} {
		var s Signal
		if err := json.Unmarshal([]byte(in), &s); err != nil || s != want {
			t.Errorf("%s: %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{`"nonsense"`, `-1`, `128`, `true`, `"signal 0"`} {
		var s Signal
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("%s decoded as %d", in, s)
		}
	}
	b, err := json.Marshal(Exit{Code: -1, Signal: 31, Reason: ReasonCompleted})
	if err != nil || string(b) != `{"code":-1,"signal":31,"reason":"completed","duration_ms":0,"lines":0,"bytes":0}` {
		t.Errorf("encoded %s, %v", b, err)
	}
	if Signal(31).String() != "SIGSYS" || Signal(9).Description() != "killed" || Signal(40).String() != "signal 40" {
		t.Error("names")
	}
}
