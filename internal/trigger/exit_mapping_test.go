package trigger

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// exitRecordJSON decodes an exit record as a runner before the signal
// number wrote it: the signal by Go's name.
func exitRecordJSON(t *testing.T, s string) *protocol.Exit {
	t.Helper()
	var x protocol.Exit
	if err := json.Unmarshal([]byte(s), &x); err != nil {
		t.Fatal(err)
	}
	return &x
}

// liveCode is the code of the live watch for exit record x.
func liveCode(x *protocol.Exit, cancelAsked bool) int {
	w := &watch{cfg: &Config{CLI: CLI{Job: "web"}}, runID: "01JD0000000000000000000000", res: &Result{}, set: watchSettings{now: time.Now}}
	if cancelAsked {
		w.cancelAt = time.Now()
	}
	return w.finish(w.exitOutcome(x)).Code
}

// attachCode is the code of attach (and logs) for exit record x.
func attachCode(x *protocol.Exit, cancelled bool) int {
	var out, errb bytes.Buffer
	f := &logFollower{app: newApp(func(string) string { return "" }, strings.NewReader(""), &out, &errb, nil), attach: true,
		cli: &logsCLI{RunID: "01JD0000000000000000000000"}, cancelled: cancelled,
		atStart: map[protocol.Stream]bool{protocol.Stdout: true, protocol.Stderr: true}}
	return exitcode.Code(f.finish(historyRun{Job: "web"}, x))
}

// Bug (issue 21): the trigger mapped 16 of Linux's 31 signals to 9, so a
// seccomp kill (SIGSYS) reported 137, as an OOM kill does, and SIGXCPU 137.
func TestSignalledJobExitsWith128PlusNLiveAndAttached(t *testing.T) {
	for rec, want := range map[string]int{
		`{"code":-1,"signal":"bad system call","reason":"completed","duration_ms":1,"lines":0,"bytes":0}`:         159,
		`{"code":-1,"signal":"CPU time limit exceeded","reason":"completed","duration_ms":1,"lines":0,"bytes":0}`: 152,
		`{"code":-1,"signal":"killed","reason":"completed","duration_ms":1,"lines":0,"bytes":0}`:                  137,
		`{"code":-1,"signal":"user defined signal 1","reason":"completed","duration_ms":1,"lines":0,"bytes":0}`:   138,
	} {
		if got := liveCode(exitRecordJSON(t, rec), false); got != want {
			t.Errorf("live %s: code %d, want %d", rec, got, want)
		}
		if got := attachCode(exitRecordJSON(t, rec), false); got != want {
			t.Errorf("attach %s: code %d, want %d", rec, got, want)
		}
	}
}

// Bug (issue 21): a cancelled run that ended by a signal gave 245 live and
// 128+N through attach. Both give 245 now, the cancel's code.
func TestCancelledSignalledRunSameCodeLiveAndAttached(t *testing.T) {
	rec := `{"code":-1,"signal":"terminated","reason":"completed","duration_ms":1,"lines":0,"bytes":0}`
	live, attached := liveCode(exitRecordJSON(t, rec), true), attachCode(exitRecordJSON(t, rec), true)
	if live != exitcode.Cancelled || attached != exitcode.Cancelled {
		t.Fatalf("cancelled run ended by SIGTERM: live %d, attach %d; want %d both", live, attached, exitcode.Cancelled)
	}
}
