// Package crashpoint kills the process with SIGKILL at a named point, for tests that prove a base loses
// nothing when it is killed at any step. It is inert unless $KOUPLE_CRASH_AT names a point ("name" or
// "name#n" for the n-th time the point is reached).
package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var (
	once  sync.Once
	point string
	nth   int
	mu    sync.Mutex
	hits  int
)

func load() {
	spec := os.Getenv("KOUPLE_CRASH_AT")
	name, n, ok := strings.Cut(spec, "#")
	point, nth = name, 1
	if ok {
		if v, err := strconv.Atoi(n); err == nil && v > 0 {
			nth = v
		}
	}
}

// Hit marks that the process reached the named point, and dies there if told to.
func Hit(name string) {
	once.Do(load)
	if point == "" || name != point {
		return
	}
	mu.Lock()
	hits++
	die := hits == nth
	mu.Unlock()
	if die {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
