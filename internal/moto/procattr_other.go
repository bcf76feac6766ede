//go:build !linux

package moto

import "syscall"

// childProcAttr starts moto_server in its own process group. Only Linux has a
// parent-death signal; on macOS (local mode, release builds) moto_server
// outlives this process if it is killed with SIGKILL.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
