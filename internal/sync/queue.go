package sync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// Defaults for the Config fields left zero.
const (
	DefaultDebounce    = 20 * time.Millisecond
	DefaultMaxDelay    = time.Second
	DefaultConcurrency = 4
)

// maxRetryAfter caps the wait a backend may ask for (HTTP's Retry-After):
// a server that asks for an hour would otherwise hold a path past any
// flush. After the cap the path is tried again and may be told to wait
// again.
const maxRetryAfter = 5 * time.Minute

// NoDebounce as Config.Debounce makes filesystem changes ready as soon as
// they are seen. A file being written may then be sent more than once; the
// content hash drops the copies that did not change.
const NoDebounce time.Duration = -1

// ErrUnsynced reports changes that a Flush could not deliver: paths still
// pending when its context expired, or paths that failed permanently.
var ErrUnsynced = errors.New("changes left unsynced")

// Config configures a Queue.
type Config struct {
	// Workspace is the tree being synced. Required.
	Workspace *change.Workspace
	// Filter names the paths never synced. Nil skips only .git.
	Filter *change.Filter
	// Backend receives the files. Required.
	Backend Backend
	// StateDir holds the manifest; it is created when missing. Required.
	StateDir string
	// Debounce is the quiet time a filesystem-only change waits for.
	// Zero means DefaultDebounce; NoDebounce makes such changes ready at
	// once.
	Debounce time.Duration
	// MaxDelay bounds how long a path that keeps changing waits after its
	// first hint. Zero means DefaultMaxDelay.
	MaxDelay time.Duration
	// Concurrency is the number of operations in flight at once, on
	// different paths. Zero means DefaultConcurrency.
	Concurrency int
	// MaxFileSize skips larger files (counted as too_large). Zero means no
	// limit.
	MaxFileSize int64
	// RetryMin and RetryMax bound the backoff between attempts on a failing
	// path. Zero means DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Target identifies the backend (the --sync value without secrets).
	// The manifest remembers it and starts over when it changes, so a new
	// target gets the whole tree. Empty binds to the empty identity.
	Target string
	// Clock is the source of time. Nil means the wall clock.
	Clock Clock
	// Metrics receives the queue's metrics. Nil means a private registry.
	Metrics *metrics.Metrics
	// Logger receives the queue's logs. Nil discards them.
	Logger hclog.Logger
	// OnSynced, when not nil, is called after each operation the backend
	// accepted and the manifest recorded; OnFailed after each one that
	// failed (retried or permanent). Both are called from a drain worker,
	// never with the queue's lock held, so they must return quickly and may
	// not wait for the queue. Skips and unchanged content call neither.
	OnSynced, OnFailed func(Event)
}

// Event is one finished backend operation, as Config.OnSynced and
// Config.OnFailed see it.
type Event struct {
	Op   string // "put" or "delete"
	Path string // workspace-relative, slash-separated
	// Bytes is the size sent by a put; zero for a delete.
	Bytes int64
	// Attempt counts the operations on this path since its last success,
	// this one included.
	Attempt int
	// Err is why a failed operation failed; nil for a synced one.
	Err error
	// Permanent says a failed operation is not retried until the file
	// changes again.
	Permanent bool
}

// entry is one path waiting for, or undergoing, an operation. Its hint
// fields describe the news received since its current operation started
// (or since it was created), never older news: an operation reads the disk
// as it is, which covers everything said before it began.
type entry struct {
	path string

	// first is the earliest detection not yet covered by a finished
	// operation; SyncLatency is measured from it.
	first time.Time
	// fsFirst and fsLast span the filesystem and scan hints still in their
	// debounce; zero when there are none.
	fsFirst, fsLast time.Time
	// urgent makes the entry ready regardless of debounce: an agent hint, a
	// settle, a rescan, a flush, or a retry.
	urgent bool
	// hinted says a hint arrived while the entry's operation was running,
	// so the path runs again after it.
	hinted bool
	// retryAt holds a failing path back until its backoff is over.
	retryAt time.Time
	// heldUntil is the part of retryAt the backend asked for (Retry-After);
	// unlike the queue's own backoff, a Flush keeps it.
	heldUntil time.Time
	attempts  int
	// runningSince is the first detection the running operation covers,
	// so /status counts an in-flight path's age too.
	runningSince time.Time

	state entryState
}

type entryState uint8

const (
	stateWaiting entryState = iota // in Queue.waiting, for its debounce or backoff
	stateReady                     // in Queue.ready, for a worker
	stateRunning                   // a worker holds it
)

// failure is what /status reports about a path whose last operation failed.
type failure struct {
	reason    string
	op        string
	attempts  int
	since     time.Time
	permanent bool
	hash      [32]byte // content that failed permanently, skipped until it changes
}

// Queue merges change hints into one entry per path and drains them to the
// backend. It implements change.Sink.
type Queue struct {
	ws          *change.Workspace
	filter      *change.Filter
	backend     Backend
	manifest    *Manifest
	committer   *committer // records finished operations; set by Run
	clock       Clock
	log         hclog.Logger
	metrics     *metrics.Metrics
	detected    map[change.Source]prometheus.Counter
	debounce    time.Duration
	maxDelay    time.Duration
	concurrency int
	maxFileSize int64
	retryMin    time.Duration
	retryMax    time.Duration
	onSynced    func(Event)
	onFailed    func(Event)

	// openFile opens a file for reading without following a final symlink;
	// tests replace it to produce read errors root cannot otherwise see.
	openFile func(name string) (fileReader, error)

	started atomic.Bool
	kick    chan struct{} // wakes an idle worker; capacity 1
	poke    chan struct{} // wakes the scheduler; capacity 1

	// mu guards everything below. It is never held across I/O: Notify
	// takes it from the agent decoder's goroutine, which must not stall.
	mu       stdsync.Mutex
	entries  map[string]*entry
	waiting  map[*entry]struct{}
	ready    []*entry
	inFlight int
	nextWake time.Time // the scheduler's next wake-up; zero when none
	flushing int       // Flush calls under way: every hint is urgent
	failed   map[string]*failure
	errors   errorRing
	changed  chan struct{} // closed and replaced when an operation finishes
}

// New opens the manifest and returns a queue. Run starts its workers;
// Close releases the manifest after Run has returned.
func New(cfg Config) (*Queue, error) {
	if cfg.Workspace == nil || cfg.Backend == nil || cfg.StateDir == "" {
		return nil, errors.New("unable to create sync queue: " +
			"workspace, backend and state directory are required")
	}
	manifest, err := OpenManifest(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("unable to create sync queue: %w", err)
	}
	if err := adoptAfterCrash(manifest, cfg); err != nil {
		_ = manifest.Close()
		return nil, fmt.Errorf("unable to create sync queue: %w", err)
	}
	if err := bindManifest(manifest, cfg); err != nil {
		_ = manifest.Close()
		return nil, fmt.Errorf("unable to create sync queue: %w", err)
	}
	if err := recoverAfterCrash(manifest, cfg); err != nil {
		_ = manifest.Close()
		return nil, fmt.Errorf("unable to create sync queue: %w", err)
	}
	q := &Queue{
		ws:          cfg.Workspace,
		filter:      cfg.Filter,
		backend:     cfg.Backend,
		manifest:    manifest,
		clock:       cfg.Clock,
		log:         cfg.Logger,
		metrics:     cfg.Metrics,
		debounce:    debounceOf(cfg.Debounce),
		maxDelay:    orDefault(cfg.MaxDelay, DefaultMaxDelay),
		concurrency: cfg.Concurrency,
		maxFileSize: cfg.MaxFileSize,
		retryMin:    orDefault(cfg.RetryMin, DefaultRetryMin),
		retryMax:    orDefault(cfg.RetryMax, DefaultRetryMax),
		onSynced:    cfg.OnSynced,
		onFailed:    cfg.OnFailed,
		openFile:    openNoFollow,
		kick:        make(chan struct{}, 1),
		poke:        make(chan struct{}, 1),
		entries:     make(map[string]*entry),
		waiting:     make(map[*entry]struct{}),
		failed:      make(map[string]*failure),
		changed:     make(chan struct{}),
	}
	if q.filter == nil {
		q.filter, _ = change.NewFilter("", nil)
	}
	if q.clock == nil {
		q.clock = realClock{}
	}
	if q.log == nil {
		q.log = hclog.NewNullLogger()
	}
	if q.metrics == nil {
		q.metrics = metrics.New()
	}
	if q.concurrency <= 0 {
		q.concurrency = DefaultConcurrency
	}
	q.detected = make(map[change.Source]prometheus.Counter)
	for _, s := range change.Sources {
		q.detected[s] = q.metrics.ChangesDetected.WithLabelValues(s.String())
	}
	return q, nil
}

func debounceOf(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return orDefault(d, DefaultDebounce)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close releases the manifest. Call it after Run has returned.
func (q *Queue) Close() error {
	return errors.Join(q.manifest.markClosed(), q.manifest.Close())
}

// Manifest returns the queue's manifest, for inspection.
func (q *Queue) Manifest() *Manifest { return q.manifest }

// Notify implements change.Sink. It touches only memory: one map lookup for
// a path hint, a walk over the waiting entries for a settle.
func (q *Queue) Notify(h change.Hint) {
	if h.Path != "" && (!fs.ValidPath(h.Path) || h.Path == ".") {
		// Producers hand over clean relative paths; anything else is a bug
		// upstream, and guessing what it meant could sync the wrong file.
		q.log.Warn("dropped hint with an unclean path", "path", h.Path, "source", h.Source)
		return
	}
	switch h.Kind {
	case change.KindPath:
		if c := q.detected[h.Source]; c != nil {
			c.Inc()
		}
		q.enqueue(h.Path, h.Source == change.SourceAgent)
	case change.KindSettle:
		q.settle()
	case change.KindRescan:
		reason := h.Reason
		if reason == "" {
			reason = "unspecified"
		}
		q.metrics.Rescans.WithLabelValues(reason).Inc()
		// A rescan is the operation on the path itself: a directory's
		// operation compares its subtree with the manifest.
		q.enqueue(h.Path, true)
	}
}

// enqueue records news about path. urgent news is ready at once; other news
// waits for the debounce.
func (q *Queue) enqueue(path string, urgent bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	e := q.entries[path]
	if e == nil {
		e = &entry{path: path}
		q.entries[path] = e
		q.metrics.QueueDepth.Set(float64(len(q.entries)))
	}
	if e.first.IsZero() {
		e.first = now
	}
	if urgent || q.flushing > 0 {
		e.urgent = true
	} else {
		if e.fsFirst.IsZero() {
			e.fsFirst = now
		}
		e.fsLast = now
	}
	if e.state == stateRunning {
		e.hinted = true
		return
	}
	q.place(e, now)
}

// settle makes every waiting filesystem change ready: the command that
// made them has finished. Entries held back by a backoff stay held.
func (q *Queue) settle() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for e := range q.waiting {
		if !e.fsFirst.IsZero() {
			e.urgent = true
			q.place(e, now)
		}
	}
	for _, e := range q.entries {
		if e.state == stateRunning && e.hinted {
			e.urgent = true
		}
	}
}

// due returns when e may run: its debounce (or none when urgent), but never
// before its backoff is over.
func (q *Queue) due(e *entry) time.Time {
	var at time.Time
	if !e.urgent {
		at = e.fsLast.Add(q.debounce)
		if limit := e.fsFirst.Add(q.maxDelay); limit.Before(at) {
			at = limit
		}
	}
	if e.retryAt.After(at) {
		at = e.retryAt
	}
	return at
}

// place puts a non-running entry where it belongs: in the ready list when
// it is due, otherwise among the waiting, waking the scheduler when this
// entry is due before its next wake-up. Callers hold q.mu.
func (q *Queue) place(e *entry, now time.Time) {
	at := q.due(e)
	if !at.After(now) {
		q.makeReady(e)
		return
	}
	if e.state != stateWaiting {
		return // already ready: news never delays an entry
	}
	q.waiting[e] = struct{}{}
	if q.nextWake.IsZero() || at.Before(q.nextWake) {
		q.nextWake = at
		signal(q.poke)
	}
}

func (q *Queue) makeReady(e *entry) {
	if e.state == stateReady {
		return
	}
	delete(q.waiting, e)
	e.state = stateReady
	q.ready = append(q.ready, e)
	signal(q.kick)
}

// signal wakes one goroutine waiting on c without ever blocking: a pending
// wake-up already covers this one.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// promoteDue moves every waiting entry that is due to the ready list and
// returns the earliest due time of the rest (zero when none). It costs one
// pass over the waiting entries, which the scheduler makes only when the
// earliest of them comes due, not per hint.
func (q *Queue) promoteDue() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	var next time.Time
	for e := range q.waiting {
		at := q.due(e)
		if !at.After(now) {
			q.makeReady(e)
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	q.nextWake = next
	return next
}

// Run drains the queue until ctx is done: Concurrency workers and the
// scheduler that releases debounced entries. Operations under way when ctx
// ends are abandoned and their paths stay queued. Run returns nil once
// every worker has stopped; it may be called once.
func (q *Queue) Run(ctx context.Context) error {
	if !q.started.CompareAndSwap(false, true) {
		return errors.New("sync queue is already running")
	}
	q.committer = newCommitter(q.manifest, q.backend)
	go q.committer.run()
	var wg stdsync.WaitGroup
	for range q.concurrency {
		wg.Go(func() { q.work(ctx) })
	}
	q.schedule(ctx)
	wg.Wait()
	// Operations the backend finished are recorded even when stopping.
	q.committer.stop()
	return nil
}

// schedule sleeps until the earliest waiting entry is due, or until a new
// entry is due earlier, and promotes what is due.
func (q *Queue) schedule(ctx context.Context) {
	for {
		var timer Timer
		var wake <-chan time.Time
		if next := q.promoteDue(); !next.IsZero() {
			timer = q.clock.NewTimer(next.Sub(q.clock.Now()))
			wake = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-q.poke:
		case <-wake:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// job is a worker's copy of what it needs from an entry; the entry itself
// stays in the map to collect news during the operation.
type job struct {
	path     string
	first    time.Time
	attempts int
}

func (q *Queue) work(ctx context.Context) {
	for {
		e, j, ok := q.take()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.kick:
				continue
			}
		}
		r := q.operate(ctx, j)
		if r.update != nil {
			// The worker moves on; the path stays in flight until its
			// group is committed.
			q.committer.add(*r.update, func(err error) { q.recorded(e, j, r, err) })
		} else {
			// Report first: finish wakes Flush, whose caller must find the
			// failure reported by then (serve sends it before the exit event).
			q.reportFailure(j, r)
			q.finish(e, j, r)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// reportFailure passes a failed operation to Config.OnFailed.
func (q *Queue) reportFailure(j job, r result) {
	if q.onFailed == nil || (r.kind != resultRetry && r.kind != resultPermanent) {
		return
	}
	q.onFailed(Event{Op: r.op, Path: j.path, Attempt: j.attempts + 1, Err: r.err,
		Permanent: r.kind == resultPermanent})
}

// take hands the oldest ready entry to a worker.
func (q *Queue) take() (*entry, job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ready) == 0 {
		return nil, job{}, false
	}
	e := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	if len(q.ready) > 0 {
		// Pass the wake-up on: one signal may stand for many ready entries.
		signal(q.kick)
	}
	e.state = stateRunning
	q.inFlight++
	j := job{path: e.path, first: e.first, attempts: e.attempts}
	e.runningSince = e.first
	e.first, e.fsFirst, e.fsLast = time.Time{}, time.Time{}, time.Time{}
	e.urgent, e.hinted, e.retryAt, e.heldUntil = false, false, time.Time{}, time.Time{}
	return e, j, true
}

// finish records an operation's result and decides the entry's future:
// gone, run again for news that came in meanwhile, or retried.
func (q *Queue) finish(e *entry, j job, r result) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	q.inFlight--
	e.state = stateWaiting

	switch r.kind {
	case resultDone:
		e.attempts = 0
		if !r.keepFailure {
			q.clearFailure(e.path)
		}
	case resultChanged:
		// The file changed under the reader: treat it as fresh news.
		e.attempts = 0
		q.restoreFirst(e, j)
		if e.fsFirst.IsZero() {
			e.fsFirst = now
		}
		e.fsLast, e.hinted = now, true
	case resultInterrupted:
		q.restoreFirst(e, j)
		e.urgent, e.hinted = true, true
	case resultRetry:
		e.attempts = j.attempts + 1
		held := min(r.retryAfter, maxRetryAfter)
		wait := max(backoff(e.attempts, q.retryMin, q.retryMax), held)
		q.restoreFirst(e, j)
		e.urgent, e.hinted, e.retryAt = true, true, now.Add(wait)
		if held > 0 {
			e.heldUntil = now.Add(held)
		}
		q.recordFailure(e.path, r, e.attempts, now, false)
		q.metrics.SyncRetries.Inc()
		q.log.Warn("sync failed, will retry", "op", r.op, "path", e.path,
			"attempt", e.attempts, "retry_in_ms", wait.Milliseconds(), "error", r.err)
	case resultPermanent:
		e.attempts = 0
		q.recordFailure(e.path, r, j.attempts+1, now, true)
		q.log.Error("sync failed permanently; the path is retried when the file changes, "+
			"fix what the backend rejects", "op", r.op, "path", e.path, "error", r.err)
	}

	if e.hinted {
		if q.flushing > 0 {
			e.urgent = true
		}
		q.place(e, now)
	} else {
		delete(q.entries, e.path)
		q.metrics.QueueDepth.Set(float64(len(q.entries)))
	}
	close(q.changed)
	q.changed = make(chan struct{})
}

// restoreFirst keeps the latency clock of news that was not synced running
// from its first detection.
func (q *Queue) restoreFirst(e *entry, j job) {
	if e.first.IsZero() || j.first.Before(e.first) {
		e.first = j.first
	}
}

func (q *Queue) recordFailure(path string, r result, attempts int, now time.Time, permanent bool) {
	f := q.failed[path]
	if f == nil {
		f = &failure{since: now}
		q.failed[path] = f
	}
	f.reason, f.op, f.attempts, f.permanent, f.hash = r.err.Error(), r.op, attempts, permanent, r.hash
	q.errors.add(SyncError{Time: now, Op: r.op, Path: path, Error: r.err.Error()})
	q.metrics.SyncFailedPaths.Set(float64(len(q.failed)))
}

func (q *Queue) clearFailure(path string) {
	if _, ok := q.failed[path]; ok {
		delete(q.failed, path)
		q.metrics.SyncFailedPaths.Set(float64(len(q.failed)))
	}
}

// permanentlyFailed reports whether this content of path already failed
// permanently; sending it again would fail the same way.
func (q *Queue) permanentlyFailed(path string, hash [32]byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.failed[path]
	return f != nil && f.permanent && f.hash == hash
}

// Flush makes every entry ready now, except those the backend asked to
// hold back (Retry-After), and waits until the queue is empty and
// no operation is in flight. Hints that arrive during a Flush are ready at
// once too. Run must be running. When ctx ends first, or when paths failed
// permanently, Flush returns an error wrapping ErrUnsynced; Pending lists
// what is left.
func (q *Queue) Flush(ctx context.Context) error {
	q.mu.Lock()
	q.flushing++
	now := q.clock.Now()
	for e := range q.waiting {
		e.urgent, e.retryAt = true, e.heldUntil
		q.place(e, now)
	}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.flushing--
		q.mu.Unlock()
	}()

	for {
		q.mu.Lock()
		left, changed := len(q.entries), q.changed
		failed := 0
		for _, f := range q.failed {
			if f.permanent {
				failed++
			}
		}
		q.mu.Unlock()
		if left == 0 && failed == 0 {
			return nil
		}
		if left == 0 {
			return fmt.Errorf("unable to flush: %w: %d paths failed permanently",
				ErrUnsynced, failed)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("unable to flush: %w: %d paths pending: %w",
				ErrUnsynced, left, ctx.Err())
		}
	}
}

// Pending returns every path still queued or in flight, sorted.
func (q *Queue) Pending() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	paths := make([]string, 0, len(q.entries))
	for p := range q.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// Depth returns the number of paths queued or in flight.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}
