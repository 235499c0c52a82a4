package sync

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// These tests drive the readiness rules with a fake clock and no workers:
// promoteDue is what the scheduler runs when its timer fires.

func newReadinessFixture(t *testing.T) (*fixture, *fakeClock) {
	clock := newFakeClock()
	f := newFixture(t, func(c *Config) {
		c.Clock = clock
		c.Debounce = 20 * time.Millisecond
		c.MaxDelay = 100 * time.Millisecond
	})
	return f, clock
}

// isReady reports whether path waits in the ready list.
func isReady(q *Queue, path string) bool {
	q.promoteDue()
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[path]
	return e != nil && e.state == stateReady
}

func TestAgentHintIsReadyAtOnce(t *testing.T) {
	f, _ := newReadinessFixture(t)
	f.hint(change.SourceAgent, "a.txt")
	if !isReady(f.queue, "a.txt") {
		t.Fatal("agent-confirmed path is not ready at once")
	}
}

func TestFilesystemHintIsReadyAfterDebounceOfQuiet(t *testing.T) {
	for _, source := range []change.Source{change.SourceFS, change.SourceScan} {
		t.Run(source.String(), func(t *testing.T) {
			f, clock := newReadinessFixture(t)
			f.hint(source, "a.txt")
			clock.Advance(19 * time.Millisecond)
			if isReady(f.queue, "a.txt") {
				t.Fatal("ready before the debounce passed")
			}
			clock.Advance(time.Millisecond)
			if !isReady(f.queue, "a.txt") {
				t.Fatal("not ready after the debounce passed")
			}
		})
	}
}

func TestPathHintedEvery10msIsReadyAtMaxDelayNotBefore(t *testing.T) {
	f, clock := newReadinessFixture(t)
	start := clock.Now()
	f.hint(change.SourceFS, "hot.txt")
	for {
		clock.Advance(10 * time.Millisecond)
		elapsed := clock.Now().Sub(start)
		ready := isReady(f.queue, "hot.txt")
		if elapsed < 100*time.Millisecond && ready {
			t.Fatalf("ready after %v, before the max delay", elapsed)
		}
		if elapsed >= 100*time.Millisecond {
			if !ready {
				t.Fatalf("not ready after %v, past the max delay", elapsed)
			}
			return
		}
		f.hint(change.SourceFS, "hot.txt")
	}
}

func TestAgentHintMakesDebouncingPathReady(t *testing.T) {
	f, _ := newReadinessFixture(t)
	f.hint(change.SourceFS, "a.txt")
	if isReady(f.queue, "a.txt") {
		t.Fatal("filesystem hint ready without debounce")
	}
	f.hint(change.SourceAgent, "a.txt")
	if !isReady(f.queue, "a.txt") {
		t.Fatal("agent confirmation did not make the path ready")
	}
}

func TestSettleMakesPendingFilesystemEntriesReady(t *testing.T) {
	f, _ := newReadinessFixture(t)
	f.hint(change.SourceFS, "a.txt")
	f.hint(change.SourceScan, "b/c.txt")
	f.queue.Notify(change.Hint{Kind: change.KindSettle, Source: change.SourceAgent})
	for _, p := range []string{"a.txt", "b/c.txt"} {
		if !isReady(f.queue, p) {
			t.Errorf("%s not ready after settle", p)
		}
	}

	// A change after the settle belongs to a later command: it debounces.
	f.hint(change.SourceFS, "later.txt")
	if isReady(f.queue, "later.txt") {
		t.Error("a hint after the settle skipped its debounce")
	}
}

func TestRescanHintIsReadyAtOnceAndCountedByReason(t *testing.T) {
	f, _ := newReadinessFixture(t)
	f.queue.Notify(change.Hint{Kind: change.KindRescan, Source: change.SourceFS,
		Path: "sub", Reason: "overflow"})
	if !isReady(f.queue, "sub") {
		t.Error("rescan of sub is not ready at once")
	}
	if got := testutil.ToFloat64(f.metrics.Rescans.WithLabelValues("overflow")); got != 1 {
		t.Errorf("rescans{overflow} = %v, want 1", got)
	}
}

func TestMillionHintsForOnePathAreOneEntry(t *testing.T) {
	f, clock := newReadinessFixture(t)
	const hints = 1_000_000
	for i := range hints {
		source := change.SourceFS
		if i%1000 == 0 {
			source = change.SourceAgent
		}
		f.hint(source, "hot.txt")
		if i%100_000 == 0 {
			clock.Advance(time.Millisecond)
		}
	}
	q := f.queue
	q.mu.Lock()
	entries, waiting, ready := len(q.entries), len(q.waiting), len(q.ready)
	q.mu.Unlock()
	if entries != 1 || waiting+ready != 1 {
		t.Fatalf("entries=%d waiting=%d ready=%d, want one entry in one place",
			entries, waiting, ready)
	}
	if got := testutil.ToFloat64(f.metrics.QueueDepth); got != 1 {
		t.Errorf("queue depth gauge = %v, want 1", got)
	}
	detected := testutil.ToFloat64(f.metrics.ChangesDetected.WithLabelValues("fs")) +
		testutil.ToFloat64(f.metrics.ChangesDetected.WithLabelValues("agent"))
	if detected != hints {
		t.Errorf("changes detected = %v, want %d (one per hint)", detected, hints)
	}
}

func TestHintDuringOperationRunsPathAgainAfterIt(t *testing.T) {
	f, _ := newReadinessFixture(t)
	q := f.queue
	f.hint(change.SourceAgent, "a.txt")
	e, j, ok := q.take()
	if !ok {
		t.Fatal("nothing to take")
	}

	// News while the operation runs must not hand the path to a second
	// worker.
	f.hint(change.SourceAgent, "a.txt")
	if _, _, again := q.take(); again {
		t.Fatal("a second worker got the path while its operation runs")
	}

	q.finish(e, j, done)
	if !isReady(q, "a.txt") {
		t.Fatal("the path did not run again after the operation that missed the news")
	}
	e, j, _ = q.take()
	q.finish(e, j, done)
	if q.Depth() != 0 {
		t.Fatalf("depth %d after the last operation, want 0", q.Depth())
	}
}

func TestUncleanHintPathsAreDropped(t *testing.T) {
	f, _ := newReadinessFixture(t)
	for _, p := range []string{"/etc/passwd", "../x", "a//b", "a/./b", ".", "a/"} {
		f.hint(change.SourceAgent, p)
	}
	if d := f.queue.Depth(); d != 0 {
		t.Fatalf("depth %d, want unclean paths dropped (pending %v)", d, f.queue.Pending())
	}
}

func TestSchedulerReleasesDebouncedPathWhenItsTimeComes(t *testing.T) {
	f, clock := newReadinessFixture(t)
	f.write("a.txt", "x")
	f.start()
	f.hint(change.SourceFS, "a.txt")

	// The clock does not move on its own: while it stands still the path
	// waits, and only advancing it past the debounce releases it.
	time.Sleep(20 * time.Millisecond)
	if n := f.backend.count("put"); n != 0 {
		t.Fatalf("%d puts before the debounce passed on the fake clock", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.backend.count("put") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("debounced path never synced")
		}
		clock.Advance(5 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

func TestBackoffDoublesUpToTheCapWithJitter(t *testing.T) {
	floor, ceiling := 100*time.Millisecond, time.Second
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{50, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			d := backoff(tt.attempt, floor, ceiling)
			if d < tt.ceiling/2 || d > tt.ceiling {
				t.Fatalf("attempt %d waited %v, want within [%v, %v]",
					tt.attempt, d, tt.ceiling/2, tt.ceiling)
			}
		}
	}
}
