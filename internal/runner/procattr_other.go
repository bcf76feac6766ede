//go:build !linux

package runner

import "syscall"

// childProcAttr starts the job in a session (and process group) of its
// own, under cred when not nil. Only Linux has a parent-death signal; on
// macOS (local mode, release builds) the job outlives this process if it is
// killed with SIGKILL.
func childProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Credential: cred}
}

// hardenRunner: macOS has no PR_SET_DUMPABLE; a job under the runner's uid
// could attach to it. Local mode says so.
func hardenRunner(bool) error { return nil }
