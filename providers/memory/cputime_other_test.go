//go:build !unix

package memory

import "time"

// cpuTime is not measured off unix.
func cpuTime() time.Duration { return 0 }
