package sync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
)

func TestNeverTwoOperationsOnOnePathAtOnce(t *testing.T) {
	f := newFixture(t)
	// Slow puts leave a wide window for a second operation to overlap; the
	// recording backend fails the test if one does.
	f.backend.before = func(op, path string) error {
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	f.start()

	var wg stdsync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			name := fmt.Sprintf("hot%d.txt", w)
			for i := range 100 {
				f.write(name, fmt.Sprintf("version %d", i))
				f.hint(change.SourceAgent, name)
				f.hint(change.SourceFS, name)
			}
		})
	}
	wg.Wait()
	f.flush()

	want := map[string]string{
		"hot0.txt": "version 99", "hot1.txt": "version 99", "hot2.txt": "version 99",
	}
	if got := tree(t, f.mirror); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("mirror is %v, want the last version of each file %v", got, want)
	}
}

func TestFailingBackendIsRetriedUntilItSucceeds(t *testing.T) {
	f := newFixture(t)
	failures := 3
	var mu stdsync.Mutex
	f.backend.before = func(op, path string) error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return errors.New("backend unavailable")
		}
		return nil
	}
	f.start()
	f.write("a.txt", "content")
	f.hint(change.SourceAgent, "a.txt")
	f.flush()

	if got := tree(t, f.mirror)["a.txt"]; got != "content" {
		t.Fatalf("mirror a.txt = %q after retries, want content", got)
	}
	if got := testutil.ToFloat64(f.metrics.SyncRetries); got != 3 {
		t.Errorf("retries = %v, want 3", got)
	}
	if got := testutil.ToFloat64(f.metrics.SyncOps.WithLabelValues("put", "failure")); got != 3 {
		t.Errorf("put failures = %v, want 3", got)
	}
	if got := testutil.ToFloat64(f.metrics.SyncOps.WithLabelValues("put", "success")); got != 1 {
		t.Errorf("put successes = %v, want 1", got)
	}
	s := f.queue.Status()
	if len(s.Failed) != 0 || len(s.LastErrors) != 3 {
		t.Errorf("status failed=%v last_errors=%d, want no failed path and 3 errors",
			s.Failed, len(s.LastErrors))
	}
	if got := testutil.ToFloat64(f.metrics.SyncFailedPaths); got != 0 {
		t.Errorf("failed paths gauge = %v after success, want 0", got)
	}
}

func TestPathThatKeepsFailingIsPendingAndReported(t *testing.T) {
	f := newFixture(t)
	f.backend.before = func(op, path string) error { return errors.New("503 from backend") }
	f.start()
	f.write("a.txt", "content")
	f.hint(change.SourceAgent, "a.txt")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := f.queue.Flush(ctx)
	if !errors.Is(err, ErrUnsynced) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want ErrUnsynced and the deadline", err)
	}
	if p := f.queue.Pending(); len(p) != 1 || p[0] != "a.txt" {
		t.Errorf("Pending = %v, want [a.txt]", p)
	}
	s := f.queue.Status()
	if len(s.Failed) != 1 || s.Failed[0].Path != "a.txt" ||
		!strings.Contains(s.Failed[0].Reason, "503") || s.Failed[0].Attempts < 1 {
		t.Errorf("status failed = %+v, want a.txt with the backend's error", s.Failed)
	}
	if s.Depth != 1 {
		t.Errorf("status depth = %d, want 1", s.Depth)
	}
	if got := testutil.ToFloat64(f.metrics.SyncFailedPaths); got != 1 {
		t.Errorf("failed paths gauge = %v, want 1", got)
	}
}

func TestPermanentFailureWaitsForTheFileToChange(t *testing.T) {
	f := newFixture(t)
	f.backend.before = func(op, path string) error {
		return fmt.Errorf("403 forbidden: %w", ErrPermanent)
	}
	f.start()
	f.write("a.txt", "v1")
	f.hint(change.SourceAgent, "a.txt")
	flushErr := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f.queue.Flush(ctx)
	}
	failures := func() float64 {
		return testutil.ToFloat64(f.metrics.SyncOps.WithLabelValues("put", "failure"))
	}

	if err := flushErr(); !errors.Is(err, ErrUnsynced) {
		t.Fatalf("Flush = %v, want ErrUnsynced for the permanent failure", err)
	}
	if failures() != 1 || testutil.ToFloat64(f.metrics.SyncRetries) != 0 {
		t.Fatalf("failures=%v retries=%v, want one attempt and no retry",
			failures(), testutil.ToFloat64(f.metrics.SyncRetries))
	}

	// The same content again is not sent again.
	f.hint(change.SourceFS, "a.txt")
	_ = flushErr()
	if failures() != 1 {
		t.Fatalf("failures = %v after a hint without a change, want 1", failures())
	}

	// New content is.
	f.write("a.txt", "v2")
	f.hint(change.SourceFS, "a.txt")
	_ = flushErr()
	if failures() != 2 {
		t.Fatalf("failures = %v after the file changed, want 2", failures())
	}
	if s := f.queue.Status(); len(s.Failed) != 1 || !s.Failed[0].Permanent {
		t.Errorf("status failed = %+v, want a.txt marked permanent", s.Failed)
	}
}

func TestUnreadableFileIsRetriedAndReported(t *testing.T) {
	f := newFixture(t)
	var mu stdsync.Mutex
	readable := false
	f.queue.openFile = func(name string) (fileReader, error) {
		mu.Lock()
		defer mu.Unlock()
		// Root reads any file, so the permission error is simulated here.
		if strings.HasSuffix(name, "secret.txt") && !readable {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
		}
		return openNoFollow(name)
	}
	f.start()
	f.write("secret.txt", "eventually")
	f.write("plain.txt", "at once")
	f.hint(change.SourceAgent, "secret.txt")
	f.hint(change.SourceAgent, "plain.txt")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.queue.Flush(ctx); !errors.Is(err, ErrUnsynced) {
		t.Fatalf("Flush = %v, want ErrUnsynced while the file is unreadable", err)
	}
	s := f.queue.Status()
	if len(s.Failed) != 1 || s.Failed[0].Path != "secret.txt" ||
		!strings.Contains(s.Failed[0].Reason, "permission denied") {
		t.Fatalf("status failed = %+v, want secret.txt with permission denied", s.Failed)
	}
	if got := tree(t, f.mirror)["plain.txt"]; got != "at once" {
		t.Errorf("an unreadable file held up another: plain.txt = %q", got)
	}

	mu.Lock()
	readable = true
	mu.Unlock()
	f.flush()
	if got := tree(t, f.mirror)["secret.txt"]; got != "eventually" {
		t.Errorf("secret.txt = %q once readable, want eventually", got)
	}
	if s := f.queue.Status(); len(s.Failed) != 0 {
		t.Errorf("status failed = %+v after success, want none", s.Failed)
	}
}

func TestFilesOverMaxFileSizeAreSkippedAndCounted(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxFileSize = 10 })
	f.start()
	f.write("small.txt", "0123456789")
	f.write("big.txt", "0123456789A")
	f.hint(change.SourceAgent, "small.txt")
	f.hint(change.SourceAgent, "big.txt")
	f.flush()

	if got := tree(t, f.mirror); len(got) != 1 || got["small.txt"] != "0123456789" {
		t.Fatalf("mirror = %v, want only small.txt", got)
	}
	if got := f.skipped(SkipTooLarge); got != 1 {
		t.Errorf("skipped too_large = %v, want 1", got)
	}
}

func TestUnchangedContentIsSkippedAndCounted(t *testing.T) {
	f := newFixture(t)
	f.start()
	f.write("a.txt", "same")
	f.hint(change.SourceAgent, "a.txt")
	f.flush()
	f.hint(change.SourceFS, "a.txt")
	f.flush()
	f.write("a.txt", "same") // rewritten with identical bytes
	f.hint(change.SourceFS, "a.txt")
	f.flush()

	if n := f.backend.count("put"); n != 1 {
		t.Errorf("puts = %d, want 1", n)
	}
	if got := testutil.ToFloat64(f.metrics.SyncUnchanged); got != 2 {
		t.Errorf("unchanged = %v, want 2", got)
	}
}

func TestSyncMetricsCountBytesAndLatency(t *testing.T) {
	f := newFixture(t)
	f.start()
	f.write("a.txt", "12345")
	f.write("b/c.txt", "123")
	f.hint(change.SourceAgent, "a.txt")
	f.hint(change.SourceFS, "b/c.txt")
	f.flush()
	if err := os.Remove(filepath.Join(f.workspace, "a.txt")); err != nil {
		t.Fatal(err)
	}
	f.hint(change.SourceFS, "a.txt")
	f.flush()

	if got := testutil.ToFloat64(f.metrics.SyncBytes); got != 8 {
		t.Errorf("bytes = %v, want 8", got)
	}
	families, err := f.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	observed := map[string]uint64{}
	for _, mf := range families {
		if mf.GetName() != "supervisor_sync_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			observed[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	if observed["put"] != 2 || observed["delete"] != 1 {
		t.Errorf("latency observations = %v, want put 2 and delete 1", observed)
	}
	if got := testutil.ToFloat64(f.metrics.QueueDepth); got != 0 {
		t.Errorf("queue depth = %v after the flush, want 0", got)
	}
}

func TestStatusListsPendingPathsOldestAge(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, func(c *Config) { c.Clock = clock; c.Debounce = time.Hour })
	for i := range 150 {
		f.hint(change.SourceFS, fmt.Sprintf("f%03d", i))
	}
	clock.Advance(3 * time.Second)

	s := f.queue.Status()
	if s.Depth != 150 || len(s.Pending) != 100 || !s.PendingTruncated {
		t.Fatalf("depth=%d pending=%d truncated=%v, want 150, 100, true",
			s.Depth, len(s.Pending), s.PendingTruncated)
	}
	if s.Pending[0] != "f000" || s.OldestPendingSeconds != 3 {
		t.Errorf("first pending %q oldest %vs, want f000 and 3s",
			s.Pending[0], s.OldestPendingSeconds)
	}
}

func TestOldestPendingIsTheAgeOfTheFirstUnsyncedDetection(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, func(c *Config) { c.Clock = clock; c.Debounce = time.Hour })
	if got := f.queue.OldestPending(); got != 0 {
		t.Errorf("OldestPending of an empty queue = %v, want 0", got)
	}
	f.hint(change.SourceFS, "old")
	clock.Advance(2 * time.Second)
	f.hint(change.SourceFS, "new")
	clock.Advance(time.Second)

	if got := f.queue.OldestPending(); got != 3*time.Second {
		t.Errorf("OldestPending = %v, want 3s (the first of two detections)", got)
	}
	if got := f.queue.Status().OldestPendingSeconds; got != 3 {
		t.Errorf("Status().OldestPendingSeconds = %v, want the same 3s", got)
	}
}

func TestNewRefusesAStateDirectoryThatCannotBeCreated(t *testing.T) {
	base := t.TempDir()
	blocker := filepath.Join(base, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ws, _ := change.NewWorkspace(base)
	backend, _ := NewDirBackend(filepath.Join(base, "mirror"))
	_, err := New(Config{Workspace: ws, Backend: backend, StateDir: filepath.Join(blocker, "state")})
	if err == nil || !strings.Contains(err.Error(), "unable to create state directory") {
		t.Fatalf("New = %v, want a state directory error", err)
	}
}
