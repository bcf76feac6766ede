package testutil

import (
	"os/exec"
	"time"
)

// WaitOrKill waits for cmd, started, to end, at most d. When it has not
// ended by then it is killed and reaped, and ended is false.
func WaitOrKill(cmd *exec.Cmd, d time.Duration) (ended bool, err error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return true, err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return false, nil
	}
}
