package sync

import (
	"sort"
	"time"
)

// Bounds on the lists in Status, so /status stays small with a huge queue.
const (
	statusPaths  = 100
	statusErrors = 20
)

// Status is the queue's part of the /status document.
type Status struct {
	// Depth counts the paths queued or in flight.
	Depth int `json:"depth"`
	// InFlight counts the operations running now.
	InFlight int `json:"in_flight"`
	// OldestPendingSeconds is the age of the oldest unsynced detection.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	// Pending lists up to 100 queued paths in byte order; PendingTruncated
	// says there are more.
	Pending          []string `json:"pending"`
	PendingTruncated bool     `json:"pending_truncated,omitempty"`
	// Failed lists up to 100 paths whose last operation failed.
	Failed []FailedPath `json:"failed"`
	// LastErrors holds the most recent failures, newest last.
	LastErrors []SyncError `json:"last_errors"`
}

// FailedPath describes a path whose last operation failed.
type FailedPath struct {
	Path     string    `json:"path"`
	Op       string    `json:"op"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	Since    time.Time `json:"since"`
	// Permanent says retrying the same content cannot help: the path is
	// retried when the file changes.
	Permanent bool `json:"permanent"`
}

// SyncError is one failed operation.
type SyncError struct {
	Time  time.Time `json:"time"`
	Op    string    `json:"op"`
	Path  string    `json:"path"`
	Error string    `json:"error"`
}

// Status returns a snapshot for /status. It copies under the queue's lock
// and sorts outside it, so a huge queue slows the caller, not the workers.
func (q *Queue) Status() Status {
	s, oldest := q.statusCopy()
	if !oldest.IsZero() {
		s.OldestPendingSeconds = q.clock.Now().Sub(oldest).Seconds()
	}

	sort.Strings(s.Pending)
	if len(s.Pending) > statusPaths {
		s.Pending, s.PendingTruncated = s.Pending[:statusPaths], true
	}
	sort.Slice(s.Failed, func(i, j int) bool { return s.Failed[i].Path < s.Failed[j].Path })
	if len(s.Failed) > statusPaths {
		s.Failed = s.Failed[:statusPaths]
	}
	return s
}

// statusCopy copies what Status reports, unsorted, with the time of the
// oldest unsynced detection.
func (q *Queue) statusCopy() (Status, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := Status{Depth: len(q.entries), InFlight: q.inFlight,
		Pending: make([]string, 0, len(q.entries)), Failed: make([]FailedPath, 0, len(q.failed)),
		LastErrors: q.errors.list()}
	for p := range q.entries {
		s.Pending = append(s.Pending, p)
	}
	for p, f := range q.failed {
		s.Failed = append(s.Failed, FailedPath{Path: p, Op: f.op, Reason: f.reason,
			Attempts: f.attempts, Since: f.since, Permanent: f.permanent})
	}
	return s, q.oldestLocked()
}

// OldestPending returns the age of the oldest unsynced detection, zero
// when nothing is pending. It is what a scrape needs of Status without the
// copy and sort: one pass over the entries under the lock.
func (q *Queue) OldestPending() time.Duration {
	q.mu.Lock()
	oldest := q.oldestLocked()
	q.mu.Unlock()
	if oldest.IsZero() {
		return 0
	}
	return q.clock.Now().Sub(oldest)
}

// oldestLocked returns the first detection of the oldest pending news, or
// the start of the oldest running operation when that is earlier; zero
// when the queue is empty. q.mu must be held.
func (q *Queue) oldestLocked() time.Time {
	var oldest time.Time
	for _, e := range q.entries {
		first := e.first
		if e.state == stateRunning && (first.IsZero() || e.runningSince.Before(first)) {
			first = e.runningSince
		}
		if !first.IsZero() && (oldest.IsZero() || first.Before(oldest)) {
			oldest = first
		}
	}
	return oldest
}

// errorRing keeps the last statusErrors failures.
type errorRing struct {
	items []SyncError
	next  int
}

func (r *errorRing) add(e SyncError) {
	if len(r.items) < statusErrors {
		r.items = append(r.items, e)
		return
	}
	r.items[r.next] = e
	r.next = (r.next + 1) % statusErrors
}

// list returns the failures oldest first.
func (r *errorRing) list() []SyncError {
	out := make([]SyncError, 0, len(r.items))
	out = append(out, r.items[r.next:]...)
	return append(out, r.items[:r.next]...)
}
