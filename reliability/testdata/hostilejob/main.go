// Command hostilejob is the job of TestHostileJobCannotForgeItsRun: it
// attacks its own run from inside, as a compromised deploy tool would, then
// exits 3. Each attack prints one line "ATTACK <name> refused|SUCCEEDED
// <detail>" so the test can count them; nothing it prints contains the
// marker FORGED-ee91 unless it reached where the job must not write.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

const marker = "FORGED-ee91"

func report(name string, ok bool, detail string) {
	verdict := "refused"
	if ok {
		verdict = "SUCCEEDED"
	}
	fmt.Printf("ATTACK %s %s %s\n", name, verdict, detail)
}

func main() {
	runID := os.Getenv(protocol.EnvRunID)
	ppid := os.Getppid()

	// (c) the runner's environment (its task-role credentials URI, the
	// queue URL, the redaction list) and memory.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ppid))
	report("read-parent-environ", err == nil, fmt.Sprintf("%d bytes", len(env)))
	_, err = os.ReadFile(fmt.Sprintf("/proc/%d/maps", ppid))
	report("read-parent-maps", err == nil, "")
	report("ptrace-parent", ptrace(ppid), "")

	// (b) forged run log lines (a successful exit with a forged output) on
	// the runner's stdout, which is the run log attach and show read.
	forged, _ := json.Marshal(protocol.RunLogLine{Run: runID, N: 2, Exit: &protocol.Exit{Reason: protocol.ReasonCompleted, Code: 0,
		Message: marker, Outputs: []protocol.JobOutput{{Name: "image", Value: marker}}}})
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/1", ppid), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write(append(forged, '\n'))
		f.Close()
	}
	report("write-parent-stdout", err == nil, "")

	// What the job's environment holds of the runner's.
	var leaked []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ACCESS_KEY_ID", protocol.EnvQueueURL, protocol.EnvRedact, protocol.EnvJobRoleARN:
			leaked = append(leaked, name)
		}
	}
	report("runner-variables-in-env", len(leaked) > 0, strings.Join(leaked, ","))

	// (a) records on the run queue with the runner's deduplication ids, so
	// that SQS drops the runner's own as duplicates. The bodies are not
	// valid records (the trigger ignores them). AWS denies the deployment
	// role the run queues; local mode's endpoint mirrors that deny.
	forgeQueue(runID)

	// A sibling run: its runner's and job's environments, and signals.
	sibling()

	fmt.Println("hostile job exits 3")
	os.Exit(3)
}

func ptrace(pid int) bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := syscall.PtraceAttach(pid); err != nil {
		return false
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WALL, nil)
	_ = syscall.PtraceDetach(pid)
	return true
}

func forgeQueue(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		report("send-forged-records", false, "no AWS configuration: "+err.Error())
		return
	}
	who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		report("send-forged-records", false, "no AWS identity: "+err.Error())
		return
	}
	fmt.Printf("IDENTITY %s\n", aws.ToString(who.Arn))
	client := sqs.NewFromConfig(cfg)
	qs, err := client.ListQueues(ctx, &sqs.ListQueuesInput{})
	if err != nil {
		report("send-forged-records", false, err.Error())
		return
	}
	url := ""
	for _, u := range qs.QueueUrls {
		if strings.Contains(u, runID) {
			url = u
		}
	}
	if url == "" {
		report("send-forged-records", false, "run queue not found")
		return
	}
	sent, refusal := 0, ""
	for seq := 1; seq <= 40; seq++ {
		_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(marker + " exit 0"),
			MessageGroupId: aws.String(runID), MessageDeduplicationId: aws.String("runner-" + strconv.Itoa(seq))})
		if err == nil {
			sent++
		} else {
			refusal = strings.ReplaceAll(err.Error(), "\n", " ")
		}
	}
	report("send-forged-records", sent > 0, fmt.Sprintf("%d of 40 sent as %s; refused: %s", sent, aws.ToString(who.Arn), refusal))
}

// sibling looks for the processes of another run (a sleeper job, its
// runner): it may see them (ps does) but neither read their environments
// nor signal them.
func sibling() {
	self, parent := os.Getpid(), os.Getppid()
	seen, readable, signalled := 0, 0, 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pid == self || pid == parent {
			continue
		}
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if !strings.Contains(string(cmdline), "sleeper.sh") {
			continue
		}
		seen++
		if b, err := os.ReadFile(d + "/environ"); err == nil && len(b) > 0 {
			readable++
		}
		if syscall.Kill(pid, 0) == nil {
			signalled++
		}
	}
	report("read-sibling-environ", readable > 0, fmt.Sprintf("%d of %d sibling processes", readable, seen))
	report("signal-sibling", signalled > 0, fmt.Sprintf("%d of %d sibling processes", signalled, seen))
	fmt.Printf("SIBLINGS %d\n", seen)
}
