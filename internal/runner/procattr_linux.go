package runner

import "syscall"

// childProcAttr starts the job in its own process group, killed by the
// kernel if this process dies first.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
