//go:build darwin || freebsd || netbsd || openbsd

package trigger

import "syscall"

const ioctlGetTermios = syscall.TIOCGETA
