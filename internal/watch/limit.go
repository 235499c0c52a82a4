package watch

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// watchLimitFile holds the per-user inotify watch limit on Linux.
const watchLimitFile = "/proc/sys/fs/inotify/max_user_watches"

// suggestedWatchLimit is the smallest limit suggested: each watch costs the
// kernel about 1 KiB of memory that cannot be swapped, so half a million
// watches cost at most about 0.5 GiB, and only when they are all in use.
const suggestedWatchLimit = 524288

// raiseLimitAdvice says how to raise the watch limit, with a value above
// the current one.
func raiseLimitAdvice() string {
	return limitAdvice(readWatchLimit(watchLimitFile))
}

// limitAdvice suggests twice the current limit (0 when unknown), and never
// less than suggestedWatchLimit.
func limitAdvice(current int) string {
	suggest := max(2*current, suggestedWatchLimit)
	if current <= 0 {
		return fmt.Sprintf("raise the limit: sysctl -w fs.inotify.max_user_watches=%d", suggest)
	}
	return fmt.Sprintf("raise the limit from %d: sysctl -w fs.inotify.max_user_watches=%d",
		current, suggest)
}

// readWatchLimit returns the limit in file, or 0 when it cannot be read.
func readWatchLimit(file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	return n
}
