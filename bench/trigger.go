package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
	"github.com/deploy-broker/deploy-broker/internal/runner"
)

//go:embed testdata/broker.yaml
var brokerYAML string

// startJobsYAML are the start section's jobs (warm runners), in its
// broker's catalogue only: the other sections' broker starts no warm runner.
//
//go:embed testdata/start-jobs.yaml
var startJobsYAML string

// startBroker writes the bench catalogue into dir and starts the local
// broker (in process: its own moto server, the real dispatcher handler, the
// SNS loop and the agent running the runner binary).
func startBroker(ctx context.Context, o options, self, dir string) (*localbroker.Broker, string, error) {
	cfgPath := filepath.Join(dir, "broker.yaml")
	catalogue := brokerYAML
	if o.startCatalogue {
		catalogue += startJobsYAML
	}
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(catalogue, "BENCH_JOB", strconv.Quote(self))), 0o644); err != nil {
		return nil, "", err
	}
	runnerPath := o.runnerBin
	if o.compress != "auto" {
		// Job environment from the catalogue only reaches the task
		// definition, which the local agent does not read: set the
		// runner's compression with a wrapper.
		runnerPath = filepath.Join(dir, "runner-wrapper")
		script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", runner.EnvCompress, shellQuote(o.compress), shellQuote(o.runnerBin))
		if err := os.WriteFile(runnerPath, []byte(script), 0o755); err != nil {
			return nil, "", err
		}
	}
	taskLogs := filepath.Join(dir, "tasks")
	if err := os.MkdirAll(taskLogs, 0o755); err != nil {
		return nil, "", err
	}
	logf, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		return nil, "", err
	}
	b, err := localbroker.Start(ctx, localbroker.Options{ConfigPath: cfgPath, RunnerPath: runnerPath,
		Log: logf, TaskLogDir: taskLogs, SweepInterval: -1, TaskStartDelay: o.brokerStartDelay})
	if err != nil {
		logf.Close()
		return nil, "", err
	}
	return b, taskLogs, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// triggerStats is one deploy-trigger run.
type triggerStats struct {
	elapsed   time.Duration // trigger start → trigger exit (code 0)
	firstLine time.Duration // trigger start → first job line read from its stdout
	lines     int64         // job lines read from the trigger's stdout
	bytes     int64         // job bytes read, newlines included
	cpu       time.Duration // deploy-trigger's user + system CPU time
	cpuTotal  time.Duration // the run's CPU, all processes (cpuUse)
	cpuNote   string        // the same per process
	runID     string
	runner    e2eStats // the runner's own counts (requests, bodies) from its task log
	start     string   // how the run's task started, from deploy-trigger's status lines: startWarm, startExhausted or ""
}

// The start of a run as deploy-trigger reports it (internal/trigger: the
// accepted line of a warm run, the notice of a cold fallback).
const (
	startWarm      = "warm"
	startExhausted = "exhausted"
)

// startOf tells from deploy-trigger's stderr how the run's task started.
func startOf(stderr string) string {
	switch {
	case strings.Contains(stderr, "; on a warm runner"):
		return startWarm
	case strings.Contains(stderr, "no warm runner of "):
		return startExhausted
	}
	return ""
}

// stream is lines / (first line → exit): the rate once the job is running.
func (st triggerStats) stream() float64 {
	return float64(st.lines) / (st.elapsed - st.firstLine).Seconds()
}

// trigger runs the real deploy-trigger binary against the local broker:
// `deploy-trigger --output plain [--color] JOB PARAMS…`, its stdout a pipe
// read here line by line. onLine sees every line (without its newline) and
// the time it was read; an error from it fails the run. The trigger must exit
// with code 0.
func (b *bencher) trigger(ctx context.Context, color bool, job string, params []string, onLine func(line []byte, at time.Time) error) (triggerStats, error) {
	var st triggerStats
	resDir, err := os.MkdirTemp(b.tmp, "trigger-") // one per run: the start section runs several at once
	if err != nil {
		return st, err
	}
	defer os.RemoveAll(resDir)
	resultFile := filepath.Join(resDir, "result.json")
	args := []string{"--output", "plain", "--result-file", resultFile}
	if color {
		args = append(args, "--color")
	}
	args = append(append(args, job), params...)
	cmd := exec.CommandContext(ctx, b.o.triggerBin, args...)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name == "PATH" || name == "HOME" || name == "TMPDIR" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, b.broker.Env()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return st, err
	}
	mark := b.cpuNow()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return st, err
	}
	r := bufio.NewReaderSize(out, 1<<20)
	var long []byte // a line longer than the buffer
	var lineErr error
	for {
		p, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, p...)
			continue
		}
		if len(p) == 0 && err != nil {
			break
		}
		now := time.Now()
		if st.lines == 0 && st.bytes == 0 {
			st.firstLine = now.Sub(start)
		}
		if len(long) > 0 {
			p = append(long, p...)
			long = long[:0]
		}
		st.bytes += int64(len(p))
		if p[len(p)-1] == '\n' {
			p = p[:len(p)-1]
		}
		if lineErr == nil {
			lineErr = onLine(p, now)
		}
		st.lines++
		if err != nil {
			break
		}
	}
	werr := cmd.Wait()
	st.elapsed = time.Since(start)
	st.start = startOf(stderr.String())
	if cmd.ProcessState != nil {
		st.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if werr != nil {
		return st, fmt.Errorf("deploy-trigger: %w; its stderr: %s", werr, tail(stderr.String()))
	}
	if lineErr != nil {
		return st, lineErr
	}
	var res struct {
		RunID   string `json:"run_id"`
		Outcome string `json:"outcome"`
		Lines   int64  `json:"lines"`
		Bytes   int64  `json:"bytes"`
	}
	rb, err := os.ReadFile(resultFile)
	if err == nil {
		err = json.Unmarshal(rb, &res)
	}
	if err != nil {
		return st, fmt.Errorf("reading deploy-trigger's result file: %w", err)
	}
	if res.Outcome != "succeeded" || res.Lines != st.lines || res.Bytes != st.bytes {
		return st, fmt.Errorf("deploy-trigger reports %s, %d lines, %d bytes; its stdout had %d lines, %d bytes", res.Outcome, res.Lines, res.Bytes, st.lines, st.bytes)
	}
	st.runID = res.RunID
	if !b.startOnly {
		st.runner, err = b.runnerCounts(ctx, res.RunID)
	}
	st.cpuTotal, st.cpuNote = cpuUse(mark, b.cpuNow(), st.cpu)
	return st, err
}

// runnerCounts reads the runner's "run finished" line from its task log
// (the local CloudWatch Logs: the job's output copy and the runner's slog
// lines). The trigger can exit before the runner has logged it, so wait.
func (b *bencher) runnerCounts(ctx context.Context, runID string) (e2eStats, error) {
	path := filepath.Join(b.taskLogs, runID+".log")
	defer os.Remove(path) // up to the job's whole output: do not keep it
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, running := b.broker.RunnerPID(runID); !running {
			if st, ok, err := runFinished(path); err != nil || ok {
				return st, err
			}
		}
		if time.Now().After(deadline) {
			return e2eStats{}, fmt.Errorf("no \"run finished\" line in the runner's task log %s", path)
		}
		select {
		case <-ctx.Done():
			return e2eStats{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func runFinished(path string) (e2eStats, bool, error) {
	var st e2eStats
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	defer f.Close()
	found := false
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) { // a long job line: skip it
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if bytes.HasPrefix(line, []byte(`{`)) && bytes.Contains(line, []byte(`"msg":"run finished"`)) {
			if s, ok := parseRunFinished(line); ok {
				st, found = s, true
			}
		}
		if err == io.EOF {
			return st, found, nil
		}
		if err != nil {
			return st, false, err
		}
	}
}

// parseRunFinished reads the runner's counts from its "run finished" slog
// line (docs/RUNNER.md).
func parseRunFinished(line []byte) (e2eStats, bool) {
	var l struct {
		Msg          string `json:"msg"`
		Requests     int64  `json:"requests"`
		Messages     int64  `json:"messages"`
		BodyBytes    int64  `json:"body_bytes"`
		RawBodyBytes int64  `json:"raw_body_bytes"`
		Compressed   int64  `json:"compressed_messages"`
	}
	if json.Unmarshal(line, &l) != nil || l.Msg != "run finished" {
		return e2eStats{}, false
	}
	return e2eStats{runnerRequests: l.Requests, runnerBodyBytes: l.BodyBytes, runnerRawBytes: l.RawBodyBytes,
		runnerMessages: l.Messages, runnerCompressed: l.Compressed}, true
}

// linesChecker checks the "lines" job's output: line i is its 9-digit index,
// a space and the alphabet, size bytes with the newline.
func linesChecker(size int) func([]byte, time.Time) error {
	want := make([]byte, size-1)
	for i := range want {
		want[i] = 'a' + byte(i%26)
	}
	var n int64
	var digits []byte
	return func(p []byte, _ time.Time) error {
		digits = strconv.AppendInt(digits[:0], n, 10)
		if len(digits) < 9 {
			copy(want, "000000000"[:9-len(digits)])
			copy(want[9-len(digits):], digits)
			want[9] = ' '
		} else {
			return fmt.Errorf("line %d: more lines than the check handles", n)
		}
		if !bytes.Equal(p, want) {
			return fmt.Errorf("line %d is %.40q…, want %.40q…", n, p, want)
		}
		n++
		return nil
	}
}
