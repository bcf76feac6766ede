package trigger

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// goldenTarget and the scenarios below drive every printer through the same
// runs; what each prints is kept in testdata/<mode>-<scenario>.golden.
// Run "go test ./internal/trigger -run TestGolden -update" to rewrite them.
func goldenTarget() *Target {
	topic, _ := parseTopicARN("arn:aws:sns:eu-west-1:123456789012:deploy-broker")
	return &Target{Job: "website", Params: map[string]string{"version": "1.4.2", "region": "eu-west-1"}, Topic: topic,
		Environment: "production", Source: "environment production from .deploy-trigger.yaml", Account: "123456789012", AccountAlias: "acme-prod", RunID: "01JD0000000000000000000000",
		Requester: &protocol.Requester{CI: "github-actions", Repository: "acme/app", Ref: "refs/heads/main", Actor: "alice"}}
}

type scenario struct {
	name    string
	records []protocol.Record
	notices map[int]string // printed before record i
	result  Result
}

func goldenScenarios() []scenario {
	invalid := protocol.Line{Stream: protocol.Stdout, B64: "/w=="} // 0xFF: not UTF-8
	withTime := func(l protocol.Line, ms int64) protocol.Line { l.Millis = ms; return l }
	ok := []protocol.Record{
		accepted("123456789012"),
		task(1, "PROVISIONING", "", ""),
		task(2, "PENDING", "", ""),
		task(3, "RUNNING", "", ""),
		started(1, 10),
		output(2, withTime(out("\x1b[32mdeploying\x1b[0m website 1.4.2"), 5), errl("warning: cache cold"),
			out("::set-output name=x::injected"), protocol.Line{Stream: protocol.Stdout, Text: "50%", Cont: true}),
		output(3, out(" … 100%"), invalid, out("done")),
		exitRec(4, 0, protocol.ReasonCompleted),
	}
	ok[1].Task.Status = "PROVISIONING"
	failed := []protocol.Record{accepted("123456789012"), started(1, 10), output(2, errl("error: migration 42 failed")), exitRec(3, 3, protocol.ReasonCompleted)}
	return []scenario{
		{name: "succeeded", records: ok, notices: map[int]string{0: "run 01JD0000000000000000000000 requested (claimed: github-actions acme/app@refs/heads/main by alice)"},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 0, Outcome: "succeeded",
				Duration: 1500 * time.Millisecond, Lines: 6, Bytes: 80}},
		{name: "failed", records: failed,
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 3, Outcome: "failed",
				Duration: 1500 * time.Millisecond, Lines: 1, Bytes: 27}},
		// Issue 14.12: the job's last line has no newline; deploy-trigger's
		// own words must still start a line of their own.
		{name: "unterminated", records: []protocol.Record{accepted("123456789012"), started(1, 10),
			output(2, out("\x1b[31mred\x1b[0m"), protocol.Line{Stream: protocol.Stdout, Text: "tricky at the end", Cont: true}), exitRec(3, 1, protocol.ReasonCompleted)},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 1, Outcome: "failed",
				Duration: 1500 * time.Millisecond, Lines: 2, Bytes: 30}},
		{name: "rejected", records: []protocol.Record{rejected(protocol.RejectBadParams, `parameter "version" must match ^[0-9.]+$`)},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", Region: "eu-west-1", Account: "123456789012", Code: exitcode.Rejected,
				Outcome: "rejected", Message: `the broker rejected the run (bad-params): parameter "version" must match ^[0-9.]+$`}},
		{name: "start-failed", records: []protocol.Record{accepted("123456789012"), task(1, "PROVISIONING", "", ""),
			task(2, "STOPPED", "TaskFailedToStart", "CannotPullContainerError: pull image manifest has been retried 5 time(s)")},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", Region: "eu-west-1", Account: "123456789012", Code: exitcode.StartFailed,
				TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc", Outcome: "start-failed",
				Message: "the task of run 01JD0000000000000000000000 failed to start: TaskFailedToStart: CannotPullContainerError: pull image manifest has been retried 5 time(s)"}},
		// Issues 24 and 25: a run of a job with approvers waits, naming its
		// own run id in the approver's command; the accepted line says who
		// approved it, the rejection who rejected it.
		{name: "approved", records: approvedRecords(), notices: map[int]string{0: "run 01JD0000000000000000000000 requested (claimed: github-actions acme/app@refs/heads/main by alice)"},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 0, Outcome: "succeeded",
				Duration: 1500 * time.Millisecond, Lines: 1, Bytes: 9}},
		{name: "disapproved", records: []protocol.Record{awaitingApproval(), rejected(protocol.RejectDisapproved, "rejected by "+approverARN+" (approver)")},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", Region: "eu-west-1", Account: "123456789012", Code: exitcode.Rejected,
				Outcome: "rejected", Message: "the broker rejected the run (disapproved): rejected by " + approverARN + " (approver)"}},
		// Review finding 2: a job can send records to its own queue. The
		// protocol refuses control characters in them; the printers still
		// keep record text on one line (no workflow command, no escape),
		// and keep only the colours of the job's output.
		{name: "hostile", records: []protocol.Record{accepted("123456789012"),
			task(1, "RUNNING\x1b]0;title\x07", "", ""),
			task(2, "STOPPED", "EssentialContainerExited", "x\n::error::forged\n::add-mask::deploy\r\u009b2J\u202e"),
			started(1, 10),
			output(2, out("\x1b[1;32mgreen\x1b[0m \x1b]52;c;aGk=\x07clip \x1b[2J\x1b[Hcleared \x1b[?25lhidden \x1bPdcs\x1b\\ c1\u009b2Jx \x1b(Bnf"),
				errl("\x1b]0;title\x1b\\stderr \x1b[38;5;196mred\x1b[m")),
			exitRec(3, 0, protocol.ReasonCompleted)},
			notices: map[int]string{1: "ignoring a feedback message that is not valid: a\n::warning::forged"},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 1, Outcome: "failed",
				Duration: 1500 * time.Millisecond, Lines: 2, Bytes: 30}},
		// Issue 25: a broker slow to answer is said to be waited for; a
		// closed output lets the run go on to the job's own code; an
		// endpoint nothing answers at is one line, at once.
		{name: "slow-broker", records: []protocol.Record{accepted("123456789012"), started(1, 10), exitRec(2, 0, protocol.ReasonCompleted)},
			notices: map[int]string{0: noAnswerMessage("01JD0000000000000000000000", 2*time.Minute, "arn:aws:sts::111122223333:assumed-role/ci/gha-1")},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 0, Outcome: "succeeded", Duration: 1500 * time.Millisecond}},
		{name: "output-closed", records: []protocol.Record{accepted("123456789012"), started(1, 10), output(2, out("migrating")), exitRec(3, 3, protocol.ReasonCompleted)},
			notices: map[int]string{3: outputClosedNotice("01JD0000000000000000000000", "", syscall.EPIPE, false)},
			result: Result{RunID: "01JD0000000000000000000000", Job: "website", TaskARN: "arn:aws:ecs:us-east-1:123456789012:task/broker/abc",
				Account: "123456789012", AccountAlias: "acme-prod", Region: "eu-west-1", Code: 3, Outcome: "failed", Duration: 1500 * time.Millisecond, Lines: 2, Bytes: 20}},
		{name: "broker-not-running", result: Result{Code: exitcode.Broker, Outcome: "broker-error", Message: unreachableError(
			&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "http://127.0.0.1:4566").Error()}},
	}
}

// The job's output keeps its colours (SGR) and nothing else of the
// terminal's control sequences; without colours, none.
func TestCleanEscapes(t *testing.T) {
	for _, c := range []struct{ in, color, plain string }{
		{"plain text é 漢字", "plain text é 漢字", "plain text é 漢字"},
		{"\x1b[1;32mok\x1b[0m", "\x1b[1;32mok\x1b[0m", "ok"},
		{"\x1b[38:5:196mx\x1b[m", "\x1b[38:5:196mx\x1b[m", "x"},
		{"a\x1b]52;c;aGk=\x07b", "ab", "ab"},
		{"a\x1b]0;t\x1b\\b", "ab", "ab"},
		{"a\x1b]0;unterminated", "a", "a"},
		{"a\x1bPq#0;1\x1b\\b", "ab", "ab"},
		{"a\x1b[2J\x1b[1;1H\x1b[?1049h\x1b[>4mb", "ab", "ab"},
		{"a\u009b2Jb\u009d0;t\u009c", "a2Jb0;t", "a2Jb0;t"},
		{"a\x9b\xffb", "a\xffb", "a\xffb"},
		{"a\x1b(Bb\x1bcc\x1b", "abc", "abc"},
		{"tab\tcr\rbs\b", "tab\tcr\rbs\b", "tab\tcr\rbs\b"},
	} {
		if got := string(cleanEscapes([]byte(c.in), true)); got != c.color {
			t.Errorf("cleanEscapes(%q, colour) = %q, want %q", c.in, got, c.color)
		}
		if got := string(cleanEscapes([]byte(c.in), false)); got != c.plain {
			t.Errorf("cleanEscapes(%q, no colour) = %q, want %q", c.in, got, c.plain)
		}
	}
}

// FuzzCleanEscapes also cuts b into up to three pieces of one line, as the
// runner may: cleaned through an escapeCarry they print as the whole line
// does (and keep its guarantees).
func FuzzCleanEscapes(f *testing.F) {
	f.Add([]byte("\x1b[1;32mok\x1b[0m\x1b]52;c;aGk=\x07\u009b2J\x9b"), uint16(3), uint16(12))
	f.Fuzz(func(t *testing.T, b []byte, cut1, cut2 uint16) {
		i, j := int(cut1)%(len(b)+1), int(cut2)%(len(b)+1)
		if i > j {
			i, j = j, i
		}
		for _, color := range []bool{true, false} {
			got := cleanEscapes(b, color)
			var c escapeCarry
			var split []byte
			split = append(split, c.clean(protocol.Stdout, b[:i], color, false)...)
			split = append(split, c.clean(protocol.Stdout, b[i:j], color, false)...)
			split = append(split, c.clean(protocol.Stdout, b[j:], color, true)...)
			// Past maxEscapeCarry a split SGR loses its colour (only).
			if (!color || len(b) <= maxEscapeCarry) && string(split) != string(got) {
				t.Fatalf("cleaning %q cut at %d and %d (colour %v) = %q, whole %q", b, i, j, color, split, got)
			}
			if len(c.stdout) != 0 {
				t.Fatalf("the carry holds %q after the line's end", c.stdout)
			}
			for _, got := range [][]byte{got, split} {
				checkCleaned(t, b, got, color)
			}
		}
	})
}

// checkCleaned fails unless got, cleaned from b, keeps no escape but SGR
// (none without color) and no C1 control, and cleans to itself.
func checkCleaned(t *testing.T, b, got []byte, color bool) {
	t.Helper()
	for i := 0; i < len(got); i++ {
		if got[i] == 0x1b {
			n, sgr, _ := escapeLen(got[i:])
			if !color || !sgr {
				t.Fatalf("cleanEscapes(%q, %v) = %q keeps a non-SGR escape", b, color, got)
			}
			i += n - 1
		}
	}
	for _, r := range string(got) {
		if r >= 0x80 && r <= 0x9f {
			t.Fatalf("cleanEscapes(%q) = %q keeps a C1 control", b, got)
		}
	}
	if again := cleanEscapes(got, color); string(again) != string(got) {
		t.Fatalf("cleanEscapes is not idempotent on %q: %q then %q", b, got, again)
	}
}

func TestGolden(t *testing.T) {
	modes := []string{"plain", "plain-timestamps", "plain-color", "terminal", "terminal-never-timestamps", "github", "json"}
	for _, mode := range modes {
		for _, sc := range goldenScenarios() {
			t.Run(mode+"-"+sc.name, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				dir := t.TempDir()
				outPath, sumPath := filepath.Join(dir, "output"), filepath.Join(dir, "summary")
				var p printer
				switch mode {
				case "plain":
					p = newPlainPrinter(&stdout, &stderr, false, false)
				case "plain-timestamps":
					p = newPlainPrinter(&stdout, &stderr, false, true)
				case "plain-color":
					p = newPlainPrinter(&stdout, &stderr, true, false)
				case "terminal":
					p = newTerminalPrinter(&stdout, &stderr, true)
				case "terminal-never-timestamps": // --color=never (or NO_COLOR) --timestamps
					tp := newTerminalPrinter(&stdout, &stderr, false)
					tp.timestamps = true
					p = tp
				case "github":
					p = newGithubPrinter(&stdout, &stderr, outPath, sumPath, "a0b1c2d3")
				case "json":
					p = newJSONPrinter(&stdout)
				}
				clock := t0
				p.target(goldenTarget())
				p.tick(clock)
				for i, r := range sc.records {
					if n, ok := sc.notices[i]; ok {
						p.notice(n)
					}
					clock = clock.Add(1500 * time.Millisecond)
					p.tick(clock)
					if err := p.record(r); err != nil {
						t.Fatal(err)
					}
				}
				res := sc.result
				p.result(&res)
				var got strings.Builder
				got.WriteString("-- stdout --\n" + stdout.String())
				got.WriteString("-- stderr --\n" + stderr.String())
				if mode == "github" {
					for _, f := range []string{outPath, sumPath} {
						b, _ := os.ReadFile(f)
						got.WriteString("-- " + filepath.Base(f) + " --\n" + string(b))
					}
				}
				checkGolden(t, filepath.Join("testdata", mode+"-"+sc.name+".golden"), got.String())
			})
		}
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// approverARN is the approver of the golden approval scenarios.
const approverARN = "arn:aws:sts::111122223333:assumed-role/release-manager/carol"

// awaitingApproval is the queued record of a run that waits for approval.
func awaitingApproval() protocol.Record {
	r := rec(protocol.SourceDispatcher, 1764525600000)
	r.Type, r.Queued = protocol.TypeQueued, &protocol.Queued{Group: "job:website", Approvers: []string{"arn:aws:iam::111122223333:role/release-manager"}, RunID: "01JD0000000000000000000000"}
	return r
}

// approvedRecords are an approved run's records: waiting, then accepted
// with its approver, then the job.
func approvedRecords() []protocol.Record {
	acc := accepted("123456789012")
	acc.Accepted.ApprovedBy = approverARN
	return []protocol.Record{awaitingApproval(), acc, started(1, 10), output(2, out("deployed!")), exitRec(3, 0, protocol.ReasonCompleted)}
}

// The commands the trigger tells the user to paste (a closed output) carry
// the --env they gave: "deploy-trigger attach RUN_ID" alone finds no broker
// in a shell without DEPLOY_TRIGGER_TOPIC_ARN.
func TestOutputClosedNoticeNamesTheEnvironment(t *testing.T) {
	for _, ended := range []bool{false, true} {
		got := outputClosedNotice("01JD0000000000000000000000", "production", syscall.EPIPE, ended)
		want := "deploy-trigger logs --env production 01JD0000000000000000000000"
		if !ended {
			want = "deploy-trigger logs --follow --env production 01JD0000000000000000000000, or deploy-trigger attach --env production 01JD0000000000000000000000"
		}
		if !strings.Contains(got, want) {
			t.Errorf("ended %v: %q lacks %q", ended, got, want)
		}
	}
}
