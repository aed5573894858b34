//go:build !unix

package guard

import "time"

// cpuTime is not measured on this platform.
func cpuTime() time.Duration { return 0 }

func threadCPUTime() time.Duration { return 0 }
