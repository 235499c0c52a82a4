package sync

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	stdsync "sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a Clock that moves only when the test calls Advance.
type fakeClock struct {
	mu     stdsync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock *fakeClock
	at    time.Time
	c     chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers that come due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	for i, other := range t.clock.timers {
		if other == t {
			t.clock.timers = append(t.clock.timers[:i], t.clock.timers[i+1:]...)
			return true
		}
	}
	return false
}

// recordingBackend wraps a backend, counts its operations and fails the
// test when two operations on one path overlap.
type recordingBackend struct {
	t     testing.TB
	inner Backend
	// before runs at the start of each operation; it may block or fail.
	before func(op, path string) error

	mu       stdsync.Mutex
	busy     map[string]bool
	ops      []string // "put a.txt", "delete b.txt", in completion order
	failures int
}

func newRecordingBackend(t testing.TB, inner Backend) *recordingBackend {
	return &recordingBackend{t: t, inner: inner, busy: make(map[string]bool)}
}

func (r *recordingBackend) enter(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[path] {
		r.t.Errorf("two operations on %q overlap", path)
	}
	r.busy[path] = true
}

func (r *recordingBackend) leave(op, path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.busy[path] = false
	if err != nil {
		r.failures++
		return
	}
	r.ops = append(r.ops, op+" "+path)
}

func (r *recordingBackend) Put(ctx context.Context, path string, content io.Reader,
	size int64, mode fs.FileMode) (err error) {
	r.enter(path)
	defer func() { r.leave("put", path, err) }()
	if r.before != nil {
		if err := r.before("put", path); err != nil {
			return err
		}
	}
	return r.inner.Put(ctx, path, content, size, mode)
}

func (r *recordingBackend) Delete(ctx context.Context, path string) (err error) {
	r.enter(path)
	defer func() { r.leave("delete", path, err) }()
	if r.before != nil {
		if err := r.before("delete", path); err != nil {
			return err
		}
	}
	return r.inner.Delete(ctx, path)
}

func (r *recordingBackend) Check(ctx context.Context) error { return r.inner.Check(ctx) }

// List passes on to the inner backend, so a crash's unrecorded files are seen.
func (r *recordingBackend) List(fn func(path string) error) error {
	if l, ok := r.inner.(Lister); ok {
		return l.List(fn)
	}
	return nil
}

// Sync passes on to the inner backend, so the group commit syncs the mirror.
func (r *recordingBackend) Sync(ctx context.Context) error {
	if s, ok := r.inner.(Syncer); ok {
		return s.Sync(ctx)
	}
	return nil
}

// Recover passes on to the inner backend, so crash debris is cleared.
func (r *recordingBackend) Recover() (int, error) {
	if rec, ok := r.inner.(Recoverer); ok {
		return rec.Recover()
	}
	return 0, nil
}

// Empty passes the inner backend's answer on, so a wiped mirror is noticed.
func (r *recordingBackend) Empty() (bool, error) {
	if e, ok := r.inner.(Emptiness); ok {
		return e.Empty()
	}
	return false, nil
}

// count returns how many successful operations of op the backend saw.
func (r *recordingBackend) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.ops {
		if len(o) > len(op) && o[:len(op)+1] == op+" " {
			n++
		}
	}
	return n
}

func (r *recordingBackend) opsOn(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, o := range r.ops {
		if o == "put "+path || o == "delete "+path {
			out = append(out, o)
		}
	}
	return out
}

// fixture is a workspace, a mirror and a queue over them.
type fixture struct {
	t         *testing.T
	workspace string
	mirror    string
	stateDir  string
	outside   string // a directory outside the workspace, for symlink targets
	backend   *recordingBackend
	metrics   *metrics.Metrics
	queue     *Queue
	cancel    context.CancelFunc
	stopped   chan struct{}
}

type fixtureOption func(*Config)

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{
		t:         t,
		workspace: filepath.Join(base, "workspace"),
		mirror:    filepath.Join(base, "mirror"),
		outside:   filepath.Join(base, "outside"),
		metrics:   metrics.New(),
	}
	f.stateDir = filepath.Join(f.workspace, ".supervisor")
	for _, dir := range []string{f.workspace, f.outside} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := NewDirBackend(f.mirror)
	if err != nil {
		t.Fatal(err)
	}
	f.backend = newRecordingBackend(t, dir)
	f.open(opts...)
	return f
}

// open creates the queue (again, after close: a restart).
func (f *fixture) open(opts ...fixtureOption) {
	f.t.Helper()
	ws, err := change.NewWorkspace(f.workspace)
	if err != nil {
		f.t.Fatal(err)
	}
	filter, err := change.NewFilter(".supervisor", []string{"*.log", "build/out"})
	if err != nil {
		f.t.Fatal(err)
	}
	cfg := Config{
		Workspace:   ws,
		Filter:      filter,
		Backend:     f.backend,
		StateDir:    f.stateDir,
		Debounce:    time.Millisecond,
		MaxDelay:    5 * time.Millisecond,
		Concurrency: 4,
		RetryMin:    time.Millisecond,
		RetryMax:    5 * time.Millisecond,
		Metrics:     f.metrics,
	}
	for _, o := range opts {
		o(&cfg)
	}
	q, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.queue = q
	f.t.Cleanup(f.close)
}

// start runs the queue until close.
func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.stopped = cancel, make(chan struct{})
	go func() {
		defer close(f.stopped)
		if err := f.queue.Run(ctx); err != nil {
			f.t.Errorf("Run: %v", err)
		}
	}()
}

// close stops the queue and releases the manifest; safe to call twice.
func (f *fixture) close() {
	if f.cancel != nil {
		f.cancel()
		<-f.stopped
		f.cancel = nil
	}
	if f.queue != nil {
		if err := f.queue.Close(); err != nil {
			f.t.Errorf("Close: %v", err)
		}
		f.queue = nil
	}
}

func (f *fixture) flush() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.queue.Flush(ctx); err != nil {
		f.t.Fatalf("Flush: %v (pending %v, status %+v)", err, f.queue.Pending(), f.queue.Status())
	}
}

func (f *fixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.workspace, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) hint(source change.Source, rel string) {
	f.queue.Notify(change.Hint{Kind: change.KindPath, Source: source, Path: rel})
}

// tree returns every regular file beneath root with its content, and fails
// on anything that is neither a file nor a directory.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := make(map[string]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = string(b)
		default:
			t.Errorf("%s: unexpected %v in tree", rel, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// dirs lists the directories beneath root (root excluded), sorted.
func dirs(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// skipped returns the PathsSkipped counter for reason.
func (f *fixture) skipped(reason string) float64 {
	return testutil.ToFloat64(f.metrics.PathsSkipped.WithLabelValues(reason))
}
