package localbroker

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// The agent's helpers for a task's process (agent.go).

// taskFamily is the family of a task definition ARN
// (arn:aws:ecs:…:task-definition/FAMILY:REVISION).
func taskFamily(arn string) string {
	name := arn[strings.LastIndex(arn, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		name = name[:i]
	}
	return name
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// baseProcessEnv is what a container would have without the task's own
// variables: a PATH, a HOME, a locale, taken from environ (nil: the
// process's own). Nothing from the user's AWS setup.
func baseProcessEnv(environ []string) []string {
	if environ == nil {
		environ = os.Environ()
	}
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM", "GOCOVERDIR":
			env = append(env, kv)
		}
	}
	return env
}
