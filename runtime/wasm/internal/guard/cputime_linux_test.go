//go:build linux

package guard

import (
	"syscall"
	"time"
)

// threadCPUTime returns the CPU time of the calling OS thread; callers
// lock their goroutine to the thread. Unlike wall time it does not count
// time spent waiting for a CPU, which on a shared machine varies a lot.
func threadCPUTime() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
