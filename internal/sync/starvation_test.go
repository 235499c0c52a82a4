package sync

import (
	"fmt"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// syncTimes drains every ready entry at once, as idle workers would, and
// records the fake time at which each path was synced.
func syncTimes(q *Queue, now time.Time, synced map[string][]time.Time) {
	q.promoteDue()
	for {
		e, j, ok := q.take()
		if !ok {
			return
		}
		synced[j.path] = append(synced[j.path], now)
		q.finish(e, j, done)
	}
}

// syncedWithin reports whether one of the sync times falls in [at, at+d].
func syncedWithin(syncs []time.Time, at time.Time, d time.Duration) bool {
	for _, s := range syncs {
		if !s.Before(at) && !s.After(at.Add(d)) {
			return true
		}
	}
	return false
}

// TestAppendEvery100msNeitherStarvesItselfNorOthers plays ten seconds of a
// log-like file appended to every 100 ms, on the fake clock in 1 ms steps,
// while another file is written once. Every append to the busy file must be
// synced within the max delay, however short the quiet between appends, and the
// other file must not wait behind it: it is synced once its own debounce
// has passed.
func TestAppendEvery100msNeitherStarvesItselfNorOthers(t *testing.T) {
	const (
		step     = time.Millisecond
		period   = 100 * time.Millisecond
		duration = 10 * time.Second
		maxDelay = time.Second
	)
	for _, debounce := range []time.Duration{
		20 * time.Millisecond,  // quiet enough between appends: synced after each
		250 * time.Millisecond, // never quiet long enough: only max delay helps
	} {
		t.Run(fmt.Sprintf("debounce=%v", debounce), func(t *testing.T) {
			clock := newFakeClock()
			f := newFixture(t, func(c *Config) {
				c.Clock, c.Debounce, c.MaxDelay = clock, debounce, maxDelay
			})
			start := clock.Now()
			otherAt := start.Add(2500*time.Millisecond + 7*time.Millisecond)
			synced := make(map[string][]time.Time)
			maxDepth := 0
			var writes []time.Time

			// The appends stop after ten seconds; the clock runs one max
			// delay longer so that the last of them has its chance.
			for now := start; now.Sub(start) <= duration+maxDelay; now = clock.Now() {
				if elapsed := now.Sub(start); elapsed < duration && elapsed%period == 0 {
					writes = append(writes, now)
					f.hint(change.SourceFS, "app.out")
				}
				if now.Equal(otherAt) {
					f.hint(change.SourceFS, "other.txt")
				}
				maxDepth = max(maxDepth, f.queue.Depth())
				syncTimes(f.queue, now, synced)
				clock.Advance(step)
			}

			// The busy file: every append is covered by a sync no later than
			// the max delay after it, however short the quiet between them.
			for _, w := range writes {
				if !syncedWithin(synced["app.out"], w, maxDelay) {
					t.Errorf("the append at %v was not synced within the max delay %v",
						w.Sub(start), maxDelay)
				}
			}

			// The quiet file: synced once, its debounce after its write.
			other := synced["other.txt"]
			if len(other) != 1 {
				t.Fatalf("other.txt synced %d times, want once", len(other))
			}
			if wait := other[0].Sub(otherAt); wait > debounce+step {
				t.Errorf("other.txt synced %v after its write, want within %v + %v",
					wait, debounce, step)
			}

			// One queue entry per path, however many writes.
			if maxDepth > 2 {
				t.Errorf("queue depth reached %d for two paths", maxDepth)
			}
		})
	}
}

func TestNoDebounceMakesFilesystemHintsReadyAtOnce(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, func(c *Config) { c.Clock, c.Debounce = clock, NoDebounce })
	f.hint(change.SourceFS, "a.txt")
	if !isReady(f.queue, "a.txt") {
		t.Fatal("a filesystem hint waits although the debounce is off")
	}
}
