package base

import "syscall"

var errAddrInUse = syscall.EADDRINUSE
