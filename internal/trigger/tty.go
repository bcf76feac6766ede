//go:build linux || darwin || freebsd || netbsd || openbsd

package trigger

import (
	"syscall"
	"unsafe"
)

// isTerminal reports whether v is an *os.File (or anything with Fd) open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(ioctlGetTermios), uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
