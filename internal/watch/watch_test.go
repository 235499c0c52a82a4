package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

func gaugeValue(m *metrics.Metrics) float64 {
	return testutil.ToFloat64(m.WatchedDirectories)
}

func TestNestedMkdirAndWriteInOneCommandIsHintedEveryTime(t *testing.T) {
	h := newHarness(t, nil)
	h.start()

	const rounds = 50
	for i := range rounds {
		cmd := exec.Command("/bin/sh", "-c",
			fmt.Sprintf("mkdir -p n%d/b/c && echo x > n%d/b/c/f", i, i))
		cmd.Dir = h.root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("round %d: %v: %s", i, err, out)
		}
	}
	for i := range rounds {
		h.waitHint(pathHint(fmt.Sprintf("n%d/b/c/f", i)))
	}
	h.barrier()
	h.checkWatchesFollowTree()
}

func TestExistingFilesAreNotHintedAtStart(t *testing.T) {
	h := newHarness(t, nil)
	h.do([]string{"mkdir", "a/b"})
	h.do([]string{"write", "a/b/f"})
	h.do([]string{"write", "top"})
	h.start()
	h.barrier()

	for _, got := range h.rec.all() {
		if !strings.HasPrefix(got.Path, ".barrier-") {
			t.Errorf("hint %+v for a path that existed before the start", got)
		}
	}
	h.checkWatchesFollowTree()
}

func TestOverflowRewatchesTheTreeThenAsksForRescan(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })

	// The rescan must be asked for only once the directories made while
	// events were lost have their watches; otherwise a write between the
	// rescan and the watch would be lost again.
	watchedAtRescan := make(chan bool, 1)
	h.rec.onHint = func(hint change.Hint) {
		if hint.Kind == change.KindRescan {
			watchedAtRescan <- h.watched("lost/sub")
		}
	}
	h.start()

	// Lose the events of a new tree, as an overflowing kernel queue would.
	fake.setMuted(true)
	h.do([]string{"sh", "mkdir -p lost/sub && echo x > lost/sub/f && touch .muted"})
	h.waitFor("the muted events to be dropped", func() bool {
		return fake.wasDropped(h.abs(".muted"))
	})
	fake.setMuted(false)

	fake.errors <- fmt.Errorf("wrapped: %w", fsnotify.ErrEventOverflow)
	h.waitHint(rescanHint("", ReasonOverflow))
	if !<-watchedAtRescan {
		t.Error("rescan asked for before lost/sub had its watch")
	}

	h.do([]string{"write", "lost/sub/later"})
	h.waitHint(pathHint("lost/sub/later"))
	h.barrier()
	h.checkWatchesFollowTree()

	if got := h.w.Status().Overflows; got != 1 {
		t.Errorf("Status().Overflows = %d, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.WatcherOverflows); got != 1 {
		t.Errorf("overflows metric = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.WatcherErrors); got != 0 {
		t.Errorf("errors metric = %v, want 0 (an overflow is counted apart)", got)
	}
}

func TestOtherWatcherErrorAsksForRescan(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })
	h.start()

	fake.errors <- errors.New("short read")
	h.waitHint(rescanHint("", ReasonWatchError))
	if got := testutil.ToFloat64(h.metrics.WatcherErrors); got != 1 {
		t.Errorf("errors metric = %v, want 1", got)
	}
	if got := h.w.Status().Overflows; got != 0 {
		t.Errorf("Status().Overflows = %d, want 0", got)
	}
}

func TestWatchLimitDegradesAndAsksForRescanOfTheDirectory(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })
	h.do([]string{"mkdir", "big/sub"})
	h.do([]string{"mkdir", "small"})
	fake.setRefuse(h.abs("big"), syscall.ENOSPC)
	fake.setRefuse(h.abs("later"), syscall.ENOSPC)

	// At start: the refused directory is reported, the rest is watched.
	h.start()
	h.waitHint(rescanHint("big", ReasonWatchLimit))
	if h.watched("big") || h.watched("big/sub") {
		t.Error("big or big/sub has a watch although big was refused one")
	}
	if !h.watched("small") {
		t.Error("small has no watch")
	}
	st := h.w.Status()
	if !st.Degraded || st.UnwatchedDirectories != 1 {
		t.Errorf("Status() = %+v, want degraded with 1 unwatched directory", st)
	}
	if !strings.Contains(st.Reason, "sysctl -w fs.inotify.max_user_watches=") {
		t.Errorf("Status().Reason = %q, want the sysctl that raises the limit", st.Reason)
	}

	// At run time: the watcher keeps running and reports each refusal.
	h.do([]string{"write", "small/f"})
	h.waitHint(pathHint("small/f"))
	h.do([]string{"mkdir", "later"})
	h.waitHint(rescanHint("later", ReasonWatchLimit))
	if got := h.w.Status().UnwatchedDirectories; got != 2 {
		t.Errorf("UnwatchedDirectories = %d, want 2", got)
	}
	if got := testutil.ToFloat64(h.metrics.WatcherErrors); got != 2 {
		t.Errorf("errors metric = %v, want 2", got)
	}

	// A refused directory that goes away no longer counts.
	h.do([]string{"rm", "later"})
	h.barrier()
	if got := h.w.Status().UnwatchedDirectories; got != 1 {
		t.Errorf("UnwatchedDirectories after removing one = %d, want 1", got)
	}

	// Once the limit is raised, the rewatch after an overflow recovers.
	fake.setRefuse(h.abs("big"), nil)
	fake.errors <- fsnotify.ErrEventOverflow
	h.waitHint(rescanHint("", ReasonOverflow))
	if st := h.w.Status(); st.Degraded || st.UnwatchedDirectories != 0 {
		t.Errorf("Status() after recovery = %+v, want not degraded", st)
	}
	h.barrier()
	h.checkWatchesFollowTree()
}

func TestDirectorySwappedForALinkBeforeItsWatchIsNotFollowed(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })
	h.do([]string{"mkdir", "$OUT/target/deep"})
	h.do([]string{"write", "$OUT/target/f"})
	h.start()

	// Swap the new directory for a link in the window between the event
	// that announced it and the watch, which then lands on the target.
	swap := h.abs("swap")
	fake.mu.Lock()
	fake.beforeAdd = func(p string) {
		if p != swap {
			return
		}
		if err := os.Remove(swap); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(h.abs("$OUT/target"), swap); err != nil {
			t.Error(err)
		}
	}
	fake.mu.Unlock()
	h.do([]string{"mkdir", "swap"})
	h.waitHint(pathHint("swap"))
	h.barrier()

	for _, got := range h.rec.all() {
		if change.IsBeneath(got.Path, "swap") && got.Path != "swap" {
			t.Errorf("hint %+v from beyond the link", got)
		}
	}
	h.checkWatchesFollowTree()
}

func TestRemovingTheWorkspaceDegrades(t *testing.T) {
	h := newHarness(t, nil)
	h.start()

	if err := os.RemoveAll(h.root); err != nil {
		t.Fatal(err)
	}
	h.waitFor("degraded status", func() bool { return h.w.Status().Degraded })
	if got := h.w.Status().WatchedDirectories; got != 0 {
		t.Errorf("WatchedDirectories = %d after the workspace went, want 0", got)
	}
}

func TestRunFailsWhenTheWorkspaceCannotBeWatched(t *testing.T) {
	h := newHarness(t, nil)
	if err := os.RemoveAll(h.root); err != nil {
		t.Fatal(err)
	}
	err := h.w.Run(context.Background())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run = %v, want an error wrapping ErrNotExist", err)
	}
	select {
	case <-h.w.Ready():
		t.Error("Ready closed although the workspace has no watch")
	default:
	}
}

func TestRunStopsOnCancelAndRunsOnce(t *testing.T) {
	fake, err := newFaultyNotifier()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func() (notifier, error) { return fake, nil })
	h.start()
	h.stop() // checks Run returned nil

	select {
	case <-fake.stop:
	default:
		t.Error("notifier not closed when Run returned")
	}
	if err := h.w.Run(context.Background()); !errors.Is(err, ErrAlreadyRun) {
		t.Errorf("second Run = %v, want ErrAlreadyRun", err)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	ws, err := change.NewWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink := change.SinkFunc(func(change.Hint) {})
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no workspace", Config{Sink: sink}, false},
		{"no sink", Config{Workspace: ws}, false},
		{"workspace and sink suffice", Config{Workspace: ws, Sink: sink}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, %v; want ok=%v", w, err, tt.ok)
			}
		})
	}
}

func TestLimitAdviceSuggestsAHigherLimit(t *testing.T) {
	tests := []struct {
		current int
		want    string
	}{
		{0, "sysctl -w fs.inotify.max_user_watches=524288"},
		{8192, "from 8192: sysctl -w fs.inotify.max_user_watches=524288"},
		{1000000, "from 1000000: sysctl -w fs.inotify.max_user_watches=2000000"},
	}
	for _, tt := range tests {
		if got := limitAdvice(tt.current); !strings.HasSuffix(got, tt.want) {
			t.Errorf("limitAdvice(%d) = %q, want it to end %q", tt.current, got, tt.want)
		}
	}
}

func TestReadWatchLimit(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          int
	}{
		{"value with newline", "65536\n", 65536},
		{"garbage", "lots", 0},
	}
	for _, tt := range tests {
		file := filepath.Join(dir, tt.name)
		if err := os.WriteFile(file, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readWatchLimit(file); got != tt.want {
			t.Errorf("%s: readWatchLimit = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := readWatchLimit(filepath.Join(dir, "missing")); got != 0 {
		t.Errorf("missing file: readWatchLimit = %d, want 0", got)
	}
}
