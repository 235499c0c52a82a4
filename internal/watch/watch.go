// Package watch turns filesystem events in the workspace into change hints.
//
// It owns one fsnotify watcher and the set of directories it watches: one
// watch per directory, because inotify has no recursive mode. New
// directories get their watch before they are listed, so files created in
// between are not missed; removed and renamed-away directories lose theirs.
// When events may have been lost (a kernel queue overflow, a watch that could
// not be added) it asks the queue for a rescan, and it rescans directories
// refused a watch by the inotify watch limit periodically until they get one.
//
// It never reads file content, never decides what is synced and does not
// debounce: every event becomes a hint at once, and the sync package decides
// what to do with it. It does not follow symbolic links, and it does not
// report files that already exist when it starts; the queue's start-up scan
// against its manifest covers those.
package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// Rescan reasons the watcher sends in KindRescan hints. They are metric
// labels downstream, so the set is fixed.
const (
	// ReasonOverflow: the kernel's event queue overflowed and dropped events.
	ReasonOverflow = "overflow"
	// ReasonWatchError: the watcher reported an error that may have lost events.
	ReasonWatchError = "watch_error"
	// ReasonWatchLimit: a directory got no watch because the per-user inotify
	// watch limit (fs.inotify.max_user_watches) is used up.
	ReasonWatchLimit = "watch_limit"
)

var (
	// ErrAlreadyRun reports a second call to Run; a Watcher runs once.
	ErrAlreadyRun = errors.New("watcher already ran")
	// ErrEventsClosed reports that the event stream ended while Run was
	// still using it.
	ErrEventsClosed = errors.New("watcher event stream ended")
)

// Config says what to watch and where to send what is seen.
type Config struct {
	// Workspace is the tree to watch. Required.
	Workspace *change.Workspace
	// Filter names the paths that are never synced; they get no watch and
	// no hints. Nil means only .git is left out.
	Filter *change.Filter
	// Sink receives the hints. Required.
	Sink change.Sink
	// Metrics receives the watcher's counters and gauges. Nil means a
	// private set that nobody scrapes.
	Metrics *metrics.Metrics
	// Logger is the parent logger; the watcher logs through
	// Logger.Named("watch"). Nil means no logs.
	Logger hclog.Logger
	// RescanInterval is how often directories refused a watch by the
	// inotify watch limit are tried again and rescanned. Zero means
	// DefaultRescanInterval.
	RescanInterval time.Duration

	// open creates the notifier; nil means fsnotify. Tests set it to inject
	// overflows and watch-limit failures.
	open func() (notifier, error)
	// ticker starts the periodic rescan's clock; nil means a time.Ticker.
	ticker rescanTicker
}

// Status is the watcher's part of /status.
type Status struct {
	// WatchedDirectories counts directories with a watch.
	WatchedDirectories int `json:"watched_directories"`
	// UnwatchedDirectories counts directories left without a watch because
	// the watch limit was reached; changes beneath them are found only by
	// rescans.
	UnwatchedDirectories int `json:"unwatched_directories"`
	// Degraded is true while some changes can go unseen; Reason says why
	// and what to do about it.
	Degraded bool   `json:"degraded"`
	Reason   string `json:"reason,omitempty"`
	// Overflows counts kernel event queue overflows since start.
	Overflows uint64 `json:"overflows"`
}

// Watcher watches a workspace and sends a change hint for every event.
// Create it with New and start it with Run.
type Watcher struct {
	ws      *change.Workspace
	filter  *change.Filter
	sink    change.Sink
	metrics *metrics.Metrics
	log     hclog.Logger
	open    func() (notifier, error)
	ticker  rescanTicker
	every   time.Duration

	ran   atomic.Bool
	ready chan struct{}

	// n is set by Run before the first watch is added, and used only by the
	// goroutine running Run.
	n notifier

	// mu guards the bookkeeping below: Run changes it, Status reads it.
	mu        sync.Mutex
	dirs      *dirSet // workspace-relative directories with a watch
	unwatched *dirSet // directories refused a watch by the watch limit
	blind     string  // why no further events can come; "" normally
	overflows uint64
}

// New checks cfg and returns a Watcher that has not started watching.
func New(cfg Config) (*Watcher, error) {
	if cfg.Workspace == nil {
		return nil, errors.New("unable to create watcher: no workspace")
	}
	if cfg.Sink == nil {
		return nil, errors.New("unable to create watcher: no sink")
	}
	filter := cfg.Filter
	if filter == nil {
		f, err := change.NewFilter("", nil)
		if err != nil {
			return nil, fmt.Errorf("unable to create watcher: %w", err)
		}
		filter = f
	}
	m := cfg.Metrics
	if m == nil {
		m = metrics.New()
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	open := cfg.open
	if open == nil {
		open = openFsnotify
	}
	ticker := cfg.ticker
	if ticker == nil {
		ticker = realTicker
	}
	every := cfg.RescanInterval
	if every <= 0 {
		every = DefaultRescanInterval
	}
	return &Watcher{
		ws:        cfg.Workspace,
		filter:    filter,
		sink:      cfg.Sink,
		metrics:   m,
		log:       logger.Named("watch"),
		open:      open,
		ticker:    ticker,
		every:     every,
		ready:     make(chan struct{}),
		dirs:      newDirSet(),
		unwatched: newDirSet(),
	}, nil
}

// Ready is closed once every directory of the workspace has its watch (or
// has been refused one and reported for rescan). It is never closed when Run
// fails before that.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Status returns a snapshot for /status. It is safe to call at any time.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	s := Status{
		WatchedDirectories:   w.dirs.len(),
		UnwatchedDirectories: w.unwatched.len(),
		Overflows:            w.overflows,
		Reason:               w.blind,
	}
	w.mu.Unlock()

	if s.Reason == "" && s.UnwatchedDirectories > 0 {
		s.Reason = fmt.Sprintf("inotify watch limit reached, %d directories unwatched; %s",
			s.UnwatchedDirectories, raiseLimitAdvice())
	}
	s.Degraded = s.Reason != ""
	return s
}

// Run watches the workspace until ctx is done, then closes the watcher and
// returns nil. It returns an error when the watcher cannot start or the
// workspace directory cannot be watched at all.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	n, err := w.open()
	if errors.Is(err, syscall.EMFILE) {
		// EMFILE from inotify_init is the per-user instance limit, which
		// other inotify users on the machine share.
		return fmt.Errorf("unable to start watcher (raise fs.inotify.max_user_instances): %w",
			err)
	}
	if err != nil {
		return fmt.Errorf("unable to start watcher: %w", err)
	}
	w.n = n
	defer func() {
		if err := n.Close(); err != nil {
			w.log.Warn("unable to close watcher", "error", err)
		}
	}()

	// Without the root's watch nothing else works, so any failure but the
	// watch limit (which keeps running, degraded) ends Run.
	result, err := w.watchTree(ctx, "", false)
	if result == addFailed || result == addGone {
		return fmt.Errorf("unable to watch workspace %s: %w", w.ws.Root(), err)
	}
	if ctx.Err() != nil {
		return nil
	}
	close(w.ready)
	w.log.Info("watching workspace", "root", w.ws.Root(),
		"watched_directories", w.Status().WatchedDirectories)

	return w.loop(ctx)
}

// loop forwards events and errors until ctx is done, and revisits the
// directories left without a watch on every tick of the periodic rescan.
func (w *Watcher) loop(ctx context.Context) error {
	tick, stop := w.ticker(w.every)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			w.revisitUnwatched(ctx)
		case ev, ok := <-w.n.Events():
			if !ok {
				return ErrEventsClosed
			}
			w.handleEvent(ctx, ev)
		case err, ok := <-w.n.Errors():
			if !ok {
				return ErrEventsClosed
			}
			w.handleError(ctx, err)
		}
	}
}
