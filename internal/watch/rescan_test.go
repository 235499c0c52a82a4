package watch

import (
	"syscall"
	"testing"
	"time"
)

// handTicker is a periodic-rescan clock that ticks only when the test says.
type handTicker chan time.Time

func (c handTicker) start(time.Duration) (<-chan time.Time, func()) { return c, func() {} }

// tick fires once and returns after the watcher has taken the tick.
func (c handTicker) tick() { c <- time.Time{} }

func (h *harness) countHints(rel, reason string) int {
	n := 0
	for _, got := range h.rec.all() {
		if got == rescanHint(rel, reason) {
			n++
		}
	}
	return n
}

func TestUnwatchedDirectoryIsRescannedOnEveryTickUntilItGetsAWatch(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })
	ticks := make(handTicker)
	h.w.ticker = ticks.start
	h.do([]string{"mkdir", "big/sub"})
	fake.setRefuse(h.abs("big"), syscall.ENOSPC)
	h.start()
	h.waitHint(rescanHint("big", ReasonWatchLimit))

	// Writes beneath the refused directory raise no event; each tick asks
	// for a rescan of the directory, which is how they reach the queue.
	h.do([]string{"write", "big/sub/f"})
	for round := 1; round <= 2; round++ {
		ticks.tick()
		h.barrier()
		if got := h.countHints("big", ReasonUnwatched); got != round {
			t.Fatalf("after tick %d: %d rescans of big, want %d", round, got, round)
		}
		if !h.w.Status().Degraded {
			t.Fatalf("after tick %d: not degraded while big has no watch", round)
		}
	}
	if h.rec.has(pathHint("big/sub/f")) {
		t.Error("a file beneath an unwatched directory was hinted as if watched")
	}

	// Once the limit lets it in, the next tick watches the subtree, hints
	// what is in it, and the watcher is whole again.
	fake.setRefuse(h.abs("big"), nil)
	ticks.tick()
	h.waitHint(pathHint("big/sub/f"))
	if st := h.w.Status(); st.Degraded || st.UnwatchedDirectories != 0 {
		t.Errorf("Status() after the watch was added = %+v, want whole", st)
	}
	h.do([]string{"write", "big/sub/g"})
	h.waitHint(pathHint("big/sub/g"))

	// With nothing unwatched a tick asks for nothing.
	before := len(h.rec.all())
	ticks.tick()
	h.barrier()
	for _, got := range h.rec.all()[before:] {
		if got.Reason == ReasonUnwatched {
			t.Errorf("tick with every directory watched sent %+v", got)
		}
	}
	h.checkWatchesFollowTree()
}

func TestUnwatchedDirectoryThatVanishedIsForgottenOnTheNextTick(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })
	ticks := make(handTicker)
	h.w.ticker = ticks.start
	h.do([]string{"mkdir", "big"})
	fake.setRefuse(h.abs("big"), syscall.ENOSPC)
	h.start()
	h.waitHint(rescanHint("big", ReasonWatchLimit))

	// The removal event is lost, so only the tick can notice; the watcher
	// must drop the directory rather than report it forever.
	fake.setMuted(true)
	h.do([]string{"rm", "big"})
	h.waitFor("the removal event to be dropped", func() bool {
		return fake.wasDropped(h.abs("big"))
	})
	fake.setRefuse(h.abs("big"), nil)
	ticks.tick()
	fake.setMuted(false)
	h.barrier()
	if st := h.w.Status(); st.Degraded {
		t.Errorf("Status() after the unwatched directory vanished = %+v, want whole", st)
	}
	if got := h.countHints("big", ReasonUnwatched); got != 1 {
		t.Errorf("%d rescans of the vanished directory, want 1 (its deletes)", got)
	}
}
