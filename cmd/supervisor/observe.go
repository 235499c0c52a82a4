package main

import (
	"errors"

	"github.com/agent-supervisor/supervisor/internal/metrics"
	"github.com/agent-supervisor/supervisor/internal/proc"
)

// observe connects what is read on every scrape or probe to the components
// that know it: the age of the oldest pending change, the watcher's state
// and readiness itself. It runs once the components exist and before any
// of them starts.
func (s *supervisor) observe() {
	s.metrics.SyncOldestPending.Sample(func() float64 {
		return s.queue.OldestPending().Seconds()
	})
	s.metrics.WatcherDegraded.Sample(func() float64 {
		return metrics.Bool(s.watcher.Status().Degraded)
	})
	s.metrics.Ready.Sample(func() float64 {
		ready, _ := s.readiness.Ready()
		return metrics.Bool(ready)
	})

	// A degraded watcher makes the supervisor unready: changes beneath the
	// directories it cannot watch reach the mirror only with the periodic
	// rescans, so the mirror no longer follows the workspace live. The
	// reason carries the fix (raise fs.inotify.max_user_watches).
	s.readiness.Watch(readyWatcher, func() string {
		if st := s.watcher.Status(); st.Degraded {
			return "degraded: " + st.Reason
		}
		return ""
	})
}

// exitOutcome classifies how the child ended, for the child_exits_total
// metric.
func exitOutcome(st proc.Status, waitErr error) string {
	switch {
	case errors.Is(waitErr, proc.ErrNotFound), errors.Is(waitErr, proc.ErrCannotExecute):
		return metrics.ExitNotStarted
	case st.Signal != 0:
		return metrics.ExitSignal
	case st.ExitCode() == 0:
		return metrics.ExitSuccess
	}
	return metrics.ExitFailure
}
