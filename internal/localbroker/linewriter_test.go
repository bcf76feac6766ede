package localbroker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// The runner's two pipes share the task's log file: pieces of a stdout line
// with a whole stderr line written in between still give whole lines.
func TestLineWriterKeepsTheTwoStreamsLinesWhole(t *testing.T) {
	var file bytes.Buffer
	mu := &sync.Mutex{}
	out, errw := &lineWriter{mu: mu, w: &file}, &lineWriter{mu: mu, w: &file}
	for _, step := range []struct {
		w *lineWriter
		s string
	}{
		{out, `{"n":1,"lines":[{"x":"ab`}, {errw, `{"msg":"run finished"}` + "\n"}, {out, `cd"}]}` + "\n" + `{"n":2,`},
		{errw, "tail without newline"}, {out, `"exit":{}}` + "\n"},
	} {
		if _, err := step.w.Write([]byte(step.s)); err != nil {
			t.Fatal(err)
		}
	}
	out.Close()
	errw.Close()
	want := []string{`{"msg":"run finished"}`, `{"n":1,"lines":[{"x":"abcd"}]}`, `{"n":2,"exit":{}}`, "tail without newline"}
	if got := strings.Split(file.String(), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("file lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A line longer than the bound is written in pieces rather than held.
	file.Reset()
	big := strings.Repeat("x", maxPendingLine+10)
	if _, err := out.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if file.Len() != len(big) || len(out.pending) != 0 {
		t.Errorf("a %d-byte line without newline: %d written, %d held", len(big), file.Len(), len(out.pending))
	}
}

// The run log's shipper sends every line of both streams, in the order the
// runner wrote them, whatever pieces they came in and however the queue
// and its sender interleave (the emulator's CloudWatch Logs, read back).
func TestShipperSendsEveryLineInOrder(t *testing.T) {
	_, awsCfg := mototest.Start(t)
	ctx := context.Background()
	c := cloudwatchlogs.NewFromConfig(awsCfg)
	const group = "/deploy-broker/test/runs"
	if err := createRunLogGroup(ctx, c, group); err != nil {
		t.Fatal(err)
	}
	s := newLogShipper(c, group, "website", "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef", slog.New(slog.NewTextHandler(io.Discard, nil)))
	mu := &sync.Mutex{}
	out, errw := &lineWriter{mu: mu, w: s}, &lineWriter{mu: mu, w: s}
	var want []string
	var pending string
	for i := 0; i < 30000; i++ {
		line := fmt.Sprintf("out %05d %s", i, strings.Repeat("x", i%300))
		pending += line + "\n"
		want = append(want, line)
		if i%7 == 0 { // odd pieces: cut mid-line
			cut := len(pending) / 2
			if _, err := out.Write([]byte(pending[:cut])); err != nil {
				t.Fatal(err)
			}
			pending = pending[cut:]
		}
		if i%1000 == 999 { // a stderr line comes between stdout's lines
			if _, err := out.Write([]byte(pending)); err != nil {
				t.Fatal(err)
			}
			pending = ""
			e := fmt.Sprintf("err %d", i)
			if _, err := errw.Write([]byte(e + "\n")); err != nil {
				t.Fatal(err)
			}
			want = append(want, e)
		}
	}
	if _, err := out.Write([]byte(pending)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	errw.Close()
	s.Close()
	var got []string
	in := &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(s.stream), StartFromHead: aws.Bool(true)}
	for {
		page, err := c.GetLogEvents(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			got = append(got, aws.ToString(ev.Message))
		}
		if len(page.Events) == 0 || aws.ToString(page.NextForwardToken) == aws.ToString(in.NextToken) {
			break
		}
		in.NextToken = page.NextForwardToken
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %q, want %q", i, got[i], want[i])
		}
	}
}

// A line longer than CloudWatch Logs' largest event goes as several events,
// each within the limit and cut between characters, and nothing is lost.
func TestSplitEventKeepsEventsWithinTheLimit(t *testing.T) {
	line := "a" + strings.Repeat("é", maxEventBytes) // 2 bytes a character after one: cuts fall mid-character
	parts := appendEvents(nil, line)
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	for i, p := range parts {
		if len(p) > maxEventBytes || !utf8.ValidString(p) {
			t.Errorf("part %d: %d bytes, valid UTF-8 %v", i, len(p), utf8.ValidString(p))
		}
	}
	if strings.Join(parts, "") != line {
		t.Error("the parts do not add up to the line")
	}
	if got := appendEvents(nil, "short"); len(got) != 1 || got[0] != "short" {
		t.Errorf("a short line: %q", got)
	}
}
