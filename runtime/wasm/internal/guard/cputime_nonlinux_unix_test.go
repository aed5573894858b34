//go:build unix && !linux

package guard

import "time"

func threadCPUTime() time.Duration { return 0 }
