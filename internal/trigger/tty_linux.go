package trigger

import "syscall"

const ioctlGetTermios = syscall.TCGETS
