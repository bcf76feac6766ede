//go:build !linux

package runner

import "syscall"

// childProcAttr starts the job in its own process group. Only Linux has a
// parent-death signal; on macOS (local mode, release builds) the job
// outlives this process if it is killed with SIGKILL.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
