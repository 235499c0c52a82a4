package main

import (
	"time"

	syncq "github.com/agent-supervisor/supervisor/internal/sync"
)

// queueDebounce turns --debounce into the queue's setting: on the command
// line 0 means what it says, no debounce, while the queue reads a zero
// setting as its default.
func queueDebounce(d time.Duration) time.Duration {
	if d == 0 {
		return syncq.NoDebounce
	}
	return d
}
