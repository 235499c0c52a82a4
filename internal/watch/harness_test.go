package watch

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/goleak"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait for the watcher. It is generous because the
// tests share a small machine running -race; a passing test never waits it
// out.
const waitLimit = 10 * time.Second

// testIgnores are the --ignore patterns every test watcher runs with.
var testIgnores = []string{"node_modules", "*.tmp"}

// testStateDir is the state directory every test watcher runs with.
const testStateDir = ".supervisor"

// recorder is a change.Sink that keeps every hint it receives.
type recorder struct {
	mu     sync.Mutex
	hints  []change.Hint
	onHint func(change.Hint) // called outside mu, from the watcher's goroutine
}

func (r *recorder) Notify(h change.Hint) {
	r.mu.Lock()
	r.hints = append(r.hints, h)
	hook := r.onHint
	r.mu.Unlock()
	if hook != nil {
		hook(h)
	}
}

func (r *recorder) has(h change.Hint) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.hints, h)
}

func (r *recorder) all() []change.Hint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hints)
}

func pathHint(rel string) change.Hint {
	return change.Hint{Kind: change.KindPath, Source: change.SourceFS, Path: rel}
}

func rescanHint(rel, reason string) change.Hint {
	return change.Hint{Kind: change.KindRescan, Source: change.SourceFS, Path: rel, Reason: reason}
}

// harness runs one Watcher on a fresh workspace, with a directory outside
// the workspace for moves in and out.
type harness struct {
	t        *testing.T
	root     string // the workspace
	out      string // a directory outside it
	rec      *recorder
	metrics  *metrics.Metrics
	w        *Watcher
	cancel   context.CancelFunc
	done     chan error
	barriers int
}

// newHarness prepares a workspace; setup runs before the watcher starts.
func newHarness(t *testing.T, open func() (notifier, error)) *harness {
	t.Helper()
	base := t.TempDir()
	h := &harness{
		t:       t,
		root:    filepath.Join(base, "workspace"),
		out:     filepath.Join(base, "outside"),
		rec:     &recorder{},
		metrics: metrics.New(),
	}
	for _, dir := range []string{h.root, h.out} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := change.NewWorkspace(h.root)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := change.NewFilter(testStateDir, testIgnores)
	if err != nil {
		t.Fatal(err)
	}
	h.w, err = New(Config{
		Workspace: ws, Filter: filter, Sink: h.rec, Metrics: h.metrics, open: open,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs the watcher and waits until it is ready. The watcher is
// stopped, and Run's nil result checked, when the test ends.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.w.Run(ctx) }()
	h.t.Cleanup(h.stop)

	select {
	case <-h.w.Ready():
	case err := <-h.done:
		h.t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(waitLimit):
		h.t.Fatal("watcher not ready in time")
	}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(waitLimit):
		h.t.Error("Run did not return after cancel")
	}
}

// abs resolves a script path: $OUT/... lies outside the workspace, anything
// else is relative to the workspace root.
func (h *harness) abs(p string) string {
	if rest, ok := cutPrefix(p, "$OUT"); ok {
		return filepath.Join(h.out, filepath.FromSlash(rest))
	}
	return filepath.Join(h.root, filepath.FromSlash(p))
}

func cutPrefix(p, prefix string) (string, bool) {
	if p == prefix {
		return "", true
	}
	if len(p) > len(prefix) && p[:len(prefix)+1] == prefix+"/" {
		return p[len(prefix)+1:], true
	}
	return "", false
}

// waitFor polls cond until it holds or waitLimit passes.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; hints so far: %v", what, h.rec.all())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) waitHint(want change.Hint) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("hint %+v", want), func() bool { return h.rec.has(want) })
}

// barrier returns once the watcher has handled every event raised before
// the call. It creates a marker file in the workspace root and waits for its
// hint: inotify delivers one instance's events in order, and the watcher
// handles them one at a time.
func (h *harness) barrier() {
	h.t.Helper()
	h.barriers++
	name := fmt.Sprintf(".barrier-%d", h.barriers)
	if err := os.WriteFile(h.abs(name), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.waitHint(pathHint(name))
}

func (h *harness) watched(rel string) bool {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	return h.w.dirs.has(rel)
}

// checkWatchesFollowTree asserts that exactly the directories on disk that
// the filter allows have a watch, with no symbolic link followed, and that
// fsnotify, Status and the gauge all agree. Call it after a barrier.
func (h *harness) checkWatchesFollowTree() {
	h.t.Helper()
	filter, err := change.NewFilter(testStateDir, testIgnores)
	if err != nil {
		h.t.Fatal(err)
	}
	var want []string
	err = filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if filter.Skip(rel) != "" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			want = append(want, rel)
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Sort(want)

	h.w.mu.Lock()
	got := h.w.dirs.all()
	h.w.mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		h.t.Errorf("watched directories = %q, want the tree's %q", got, want)
	}

	var kernel []string
	for _, p := range h.w.n.WatchList() {
		rel, _ := filepath.Rel(h.root, p)
		kernel = append(kernel, path.Clean(filepath.ToSlash(rel)))
	}
	for i, k := range kernel {
		if k == "." {
			kernel[i] = ""
		}
	}
	slices.Sort(kernel)
	if !slices.Equal(kernel, want) {
		h.t.Errorf("fsnotify watch list = %q, want %q", kernel, want)
	}

	if n := h.w.Status().WatchedDirectories; n != len(want) {
		h.t.Errorf("Status().WatchedDirectories = %d, want %d", n, len(want))
	}
	if g := gaugeValue(h.metrics); g != float64(len(want)) {
		h.t.Errorf("watched_directories gauge = %v, want %d", g, len(want))
	}
}

// faultyNotifier wraps fsnotify to inject what the kernel does only under
// load: Add refused with a chosen error, events lost, errors reported.
type faultyNotifier struct {
	notifier
	events chan fsnotify.Event
	errors chan error
	stop   chan struct{}
	wg     sync.WaitGroup

	mu        sync.Mutex
	beforeAdd func(path string) // called before each Add reaches fsnotify
	refuse    map[string]error  // absolute path -> error Add returns
	muted     bool              // drop every event while set
	dropped   []string          // names of the events dropped
}

func newFaultyNotifier() (*faultyNotifier, error) {
	real, err := openFsnotify()
	if err != nil {
		return nil, err
	}
	f := &faultyNotifier{
		notifier: real,
		events:   make(chan fsnotify.Event),
		errors:   make(chan error),
		stop:     make(chan struct{}),
		refuse:   make(map[string]error),
	}
	f.wg.Add(1)
	go f.forward()
	return f, nil
}

// forward passes the real events on unless muted.
func (f *faultyNotifier) forward() {
	defer f.wg.Done()
	for {
		select {
		case <-f.stop:
			return
		case ev, ok := <-f.notifier.Events():
			if !ok {
				return
			}
			f.mu.Lock()
			muted := f.muted
			if muted {
				f.dropped = append(f.dropped, ev.Name)
			}
			f.mu.Unlock()
			if muted {
				continue
			}
			select {
			case f.events <- ev:
			case <-f.stop:
				return
			}
		}
	}
}

func (f *faultyNotifier) Add(p string) error {
	f.mu.Lock()
	err, hook := f.refuse[p], f.beforeAdd
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if hook != nil {
		hook(p)
	}
	return f.notifier.Add(p)
}

func (f *faultyNotifier) Events() <-chan fsnotify.Event { return f.events }
func (f *faultyNotifier) Errors() <-chan error          { return f.errors }

func (f *faultyNotifier) Close() error {
	close(f.stop)
	err := f.notifier.Close()
	f.wg.Wait()
	return err
}

func (f *faultyNotifier) setRefuse(abs string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.refuse, abs)
		return
	}
	f.refuse[abs] = err
}

func (f *faultyNotifier) setMuted(m bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.muted = m
}

func (f *faultyNotifier) wasDropped(abs string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.dropped, abs)
}
