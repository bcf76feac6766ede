// Command hostilewarm is the job of TestHostileWarmJob (security review of
// issue 26): run on a warm runner, it attacks the warm runners around it
// and tries to outlive its run, then exits 3. Each attack prints one line
// "ATTACK <name> refused|SUCCEEDED <detail>". Its one argument is the
// broker's name (the inboxes are "<broker>-warm-<ULID>").
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func report(name string, ok bool, detail string) {
	verdict := "refused"
	if ok {
		verdict = "SUCCEEDED"
	}
	fmt.Printf("ATTACK %s %s %s\n", name, verdict, strings.ReplaceAll(detail, "\n", " "))
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "linger" {
		// The child left behind: it would wait for a later run on the
		// host (local mode) to read or steer it.
		for i := 0; i < 600; i++ {
			time.Sleep(time.Second)
		}
		return
	}
	broker := os.Args[1]
	fmt.Printf("JOBUID %d RUN %s\n", os.Getuid(), os.Getenv(protocol.EnvRunID))

	// Persistence: a child in a session of its own, detached from the
	// job's process group, outliving the job.
	self, _ := os.Executable()
	child := exec.Command(self, "linger")
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err == nil {
		fmt.Printf("LINGER %d\n", child.Process.Pid)
		_ = child.Process.Release()
	}

	// The warm runner's own variables: its inbox, its task role.
	var leaked []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case protocol.EnvWarmInbox, protocol.EnvWarmIdle, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
			"AWS_ACCESS_KEY_ID", protocol.EnvQueueURL, protocol.EnvJobRoleARN:
			leaked = append(leaked, name)
		}
	}
	report("warm-runner-variables-in-env", len(leaked) > 0, strings.Join(leaked, ","))
	_, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", os.Getppid()))
	report("read-own-runner-environ", err == nil, "")

	// The other warm runners, idle on the host: their environments hold
	// their inboxes and task-role keys.
	seen, readable := 0, 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pid == os.Getpid() || pid == os.Getppid() {
			continue
		}
		if b, _ := os.ReadFile(d + "/cmdline"); !strings.Contains(string(b), "deploy-runner") {
			continue
		}
		seen++
		if b, err := os.ReadFile(d + "/environ"); err == nil && len(b) > 0 {
			readable++
		}
	}
	report("read-idle-runner-environ", readable > 0, fmt.Sprintf("%d of %d runner processes", readable, seen))
	fmt.Printf("RUNNERS %d\n", seen)

	inboxes(broker)
	brokerResources(broker) // broker.go
	fmt.Println("hostile warm job exits 3")
	os.Exit(3)
}

// inboxes lists the broker's warm runners' inboxes with the job's own
// deployment session and tries every way in: take the next run's
// assignment, plant one of its own, purge, reconfigure, delete.
func inboxes(broker string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		report("inbox-list", false, err.Error())
		return
	}
	// Whose credentials the job holds (its loopback endpoint's, the
	// AWS_CONTAINER_CREDENTIALS_FULL_URI the runner serves): the test
	// checks they are the deployment role's session, not the task role's.
	if who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err == nil {
		fmt.Printf("IDENTITY %s\n", aws.ToString(who.Arn))
	}
	c := sqs.NewFromConfig(cfg)
	out, err := c.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(broker + "-warm-")})
	if err != nil {
		fmt.Printf("INBOXES 0 (%v)\n", err)
		return
	}
	fmt.Printf("INBOXES %d\n", len(out.QueueUrls))
	forged := fmt.Sprintf(`{"v":1,"slot":"warm-%s","run_id":"%s","queue_url":"http://127.0.0.1/123456789012/x","job":"hostile","deadline":"2099-01-01T00:00:00Z","heartbeat":"1s","grace":"1s","argv":["/bin/sh","-c","echo FORGED-RUN"]}`,
		protocol.NewRunID(time.Now()), protocol.NewRunID(time.Now()))
	tries := map[string]func(u string) error{
		"inbox-receive": func(u string) error {
			o, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &u, WaitTimeSeconds: 0})
			if err == nil && len(o.Messages) > 0 {
				fmt.Printf("TOOK %s\n", aws.ToString(o.Messages[0].Body))
			}
			return err
		},
		"inbox-send-forged-assignment": func(u string) error {
			_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &u, MessageBody: &forged})
			return err
		},
		"inbox-purge": func(u string) error { _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &u}); return err },
		"inbox-set-policy": func(u string) error {
			_, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &u, Attributes: map[string]string{"Policy": `{"Version":"2012-10-17","Statement":[]}`}})
			return err
		},
		"inbox-get-attributes": func(u string) error {
			_, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &u, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
			return err
		},
		"inbox-delete": func(u string) error { _, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: &u}); return err },
	}
	for _, name := range []string{"inbox-receive", "inbox-send-forged-assignment", "inbox-purge", "inbox-set-policy", "inbox-get-attributes", "inbox-delete"} {
		ok, why := 0, ""
		for _, u := range out.QueueUrls {
			if err := tries[name](u); err == nil {
				ok++
			} else {
				why = err.Error()
			}
		}
		report(name, ok > 0, fmt.Sprintf("%d of %d inboxes; refused: %s", ok, len(out.QueueUrls), why))
	}
}
