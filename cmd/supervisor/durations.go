package main

import (
	"time"

	"github.com/agent-supervisor/supervisor/internal/proc"
)

// childGrace turns --grace into the child's setting: on the command line 0
// means what it says, SIGKILL right after the signal, while proc reads a
// zero setting as its default.
func childGrace(d time.Duration) time.Duration {
	if d == 0 {
		return proc.NoGrace
	}
	return d
}
