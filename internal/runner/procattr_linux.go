package runner

import "syscall"

// childProcAttr starts the job in a session (and process group) of its own,
// killed by the kernel if this process dies first, and, when cred is not
// nil, under that uid and gid with no supplementary groups.
func childProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// hardenRunner makes this process non-dumpable: its /proc files
// (environ, mem, fd/…) become root's and ptrace needs CAP_SYS_PTRACE, so
// a job under the same uid cannot read the runner's environment or memory
// nor write to its file descriptors. With switching set (the job gets
// another uid) it also sets no_new_privs, which the job inherits: no
// setuid program gives it back privileges.
func hardenRunner(switching bool) error {
	const prSetDumpable, prSetNoNewPrivs = 4, 38
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetDumpable, 0, 0, 0, 0, 0); e != 0 {
		return e
	}
	if switching {
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0, 0); e != 0 {
			return e
		}
	}
	return nil
}
