package moto

import "syscall"

// childProcAttr starts moto_server in its own process group, killed by the
// kernel if this process dies first.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
