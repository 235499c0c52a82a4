package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/oklog/run"

	"github.com/agent-supervisor/supervisor/internal/agent"
	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
	"github.com/agent-supervisor/supervisor/internal/proc"
	syncq "github.com/agent-supervisor/supervisor/internal/sync"
	"github.com/agent-supervisor/supervisor/internal/watch"
)

// exitSetup is the status when the supervisor itself cannot start (state
// directory not writable, listen address taken, watcher refused). It is the
// status `docker run` uses for the same situation, and it is out of the
// range of signal deaths (128+N) and of 126/127.
const exitSetup = 125

// Readiness conditions; /readyz lists the unmet ones by these names.
const (
	readyWatcher = "watcher"
	readyScan    = "startup_scan"
	readyBackend = "backend"
)

// backendCheckInterval is how often the backend's health is asked again so
// that /readyz follows a backend that goes away and comes back.
const backendCheckInterval = 5 * time.Second

// runCommand implements `supervisor run` and returns the process's exit
// status.
func runCommand(args []string, stderr io.Writer) int {
	// A panic must not leave an interactive terminal in raw mode.
	defer proc.RestoreOnPanic()
	cfg, err := parseRun(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "supervisor run: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)

	s, err := newSupervisor(cfg, log, os.Stdin, os.Stdout)
	if errors.Is(err, errUsage) {
		log.Error("invalid configuration", "error", err)
		return exitUsage
	}
	if err != nil {
		log.Error("unable to start", "error", err)
		return exitSetup
	}
	defer s.close()
	return s.run()
}

// host holds what outlives one supervised command: the metrics registry
// and the reaper. `supervisor run` makes one for its only command; `serve`
// keeps one for all the runs it takes.
type host struct {
	metrics  *metrics.Metrics
	reaper   *proc.Reaper
	liveness *metrics.Liveness // /healthz: the loops of the host and of its runs
}

// newHost creates the metrics and the reaper, and makes the process a
// child subreaper when asked to and not PID 1 already.
func newHost(log hclog.Logger, subreaper bool) *host {
	h := &host{metrics: metrics.New(), reaper: proc.NewReaper(log.Named("reaper")),
		liveness: metrics.NewLiveness()}
	if os.Getpid() != 1 && subreaper {
		if err := proc.SetSubreaper(); err != nil {
			log.Warn("unable to become a child subreaper; orphans of the child will "+
				"be reaped by init instead", "error", err)
		}
	}
	return h
}

// runIO is where one run's inputs come from and its output goes: the
// process's own stdin, stdout and signals for `supervisor run`; the
// control API's event buffer and signal channel for a run of `serve`.
type runIO struct {
	stdin   *os.File  // nil: batch mode, the child's stdin reads end of file
	stdout  io.Writer // nil: none
	events  io.Writer // nil: none; the serve run's event stream
	signals <-chan os.Signal
	env     []string // the child's environment
	dir     string   // the child's working directory; empty: the supervisor's

	// onSynced and onFailed receive every finished backend operation;
	// nil for `supervisor run`.
	onSynced, onFailed func(syncq.Event)
}

// supervisor holds the components of one `run` and the order in which they
// start and stop.
type supervisor struct {
	cfg   *runConfig
	log   hclog.Logger
	stdin *os.File
	io    runIO
	// ownsHost says the supervisor runs the host's reaper itself, as
	// `supervisor run` does; serve's daemon runs it for all its runs.
	ownsHost bool

	metrics   *metrics.Metrics
	readiness *metrics.Readiness
	liveness  *metrics.Liveness
	server    *metrics.Server // nil when --listen is empty
	reaper    *proc.Reaper
	workspace *change.Workspace
	backend   syncq.Backend
	queue     *syncq.Queue
	watcher   *watch.Watcher
	decoder   *agent.Decoder
	output    *fanout // stdout and --tee: they may stall, the child waits for them
	observers *fanout // the decoder, watchdog and events: fed as output is read
	watchdog  *watchdog
	tee       *os.File // nil without --tee

	signals     <-chan os.Signal
	stopSignals func()

	mu       sync.Mutex
	child    *proc.Child // nil until started
	unsynced []string    // what the final flush left, for /status
	startErr error       // why the command could not be started, if it could not
	exitCode int
}

func newSupervisor(cfg *runConfig, log hclog.Logger, stdin, stdout *os.File) (*supervisor, error) {
	// Signals are caught before anything else starts: as PID 1 an
	// unhandled SIGTERM would be ignored by the kernel, and elsewhere it
	// would kill the supervisor before the child could be told.
	signals, stopSignals := proc.NotifySignals()
	// A reader that goes away must not kill the supervisor with SIGPIPE
	// before the final flush. Notify, unlike Ignore, is not inherited by
	// the child across exec.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	h := newHost(log, cfg.Subreaper)
	s, err := newRunSupervisor(h, cfg, log, runIO{
		stdin:   stdin,
		stdout:  stdout,
		signals: signals,
		env:     childEnv(os.Environ()),
	})
	if err != nil {
		stopSignals()
		return nil, err
	}
	s.ownsHost, s.stopSignals = true, stopSignals
	return s, nil
}

// newRunSupervisor builds the per-run components on a host: workspace,
// backend, queue, watcher, decoder and output. Anything that can fail
// fails here, before the child starts.
func newRunSupervisor(h *host, cfg *runConfig, log hclog.Logger, rio runIO) (*supervisor, error) {
	s := &supervisor{
		cfg:       cfg,
		log:       log,
		stdin:     rio.stdin,
		io:        rio,
		metrics:   h.metrics,
		reaper:    h.reaper,
		readiness: metrics.NewReadiness(readyWatcher, readyScan, readyBackend),
		liveness:  h.liveness,
		signals:   rio.signals,
		exitCode:  exitSetup,
	}
	if err := s.openComponents(); err != nil {
		s.close()
		return nil, err
	}
	s.observe()
	return s, nil
}

// openComponents builds the workspace, backend, queue, watcher, decoder,
// output fan-out and HTTP listener. Anything that can fail fails here,
// before the child starts.
func (s *supervisor) openComponents() error {
	cfg := s.cfg
	// The workspace must exist already: creating a mistyped --workspace
	// would watch and sync an empty tree and report success. The state
	// directory is created by the queue when it opens the manifest.
	var err error
	if s.workspace, err = change.NewWorkspace(cfg.Workspace); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	stateRel := ""
	if rel, err := s.workspace.Rel("", cfg.StateDir); err == nil {
		stateRel = rel
	}
	filter, err := change.NewFilter(stateRel, append(cfg.Ignore, s.teeIgnore()...))
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if cfg.Gitignore {
		filter.ReadGitignore(s.workspace)
	}
	if s.backend, err = s.openBackend(); err != nil {
		return fmt.Errorf("unable to use --sync %s: %w", redactTarget(cfg.Sync), err)
	}
	// A mirror inside the workspace would be watched and mirrored into
	// itself without end; a mirror that contains the workspace would have
	// the workspace's files overwritten by their own copies' neighbours.
	if dir, ok := s.backend.(*syncq.DirBackend); ok {
		if _, err := s.workspace.Rel("", dir.Root()); err == nil {
			return fmt.Errorf("%w: the --sync directory %s lies inside the workspace %s; "+
				"put the mirror elsewhere", errUsage, dir.Root(), s.workspace.Root())
		}
		if contains(dir.Root(), s.workspace.Root()) {
			return fmt.Errorf("%w: the --sync directory %s contains the workspace %s; "+
				"put the mirror elsewhere", errUsage, dir.Root(), s.workspace.Root())
		}
	}

	s.queue, err = syncq.New(syncq.Config{
		Workspace:   s.workspace,
		Filter:      filter,
		Backend:     s.backend,
		StateDir:    cfg.StateDir,
		Debounce:    queueDebounce(cfg.Debounce),
		MaxDelay:    cfg.MaxDelay,
		Concurrency: cfg.Concurrency,
		MaxFileSize: cfg.MaxFileSize,
		Metrics:     s.metrics,
		Logger:      s.log.Named("sync"),
		Target:      s.targetIdentity(),
		OnSynced:    s.io.onSynced,
		OnFailed:    s.io.onFailed,
	})
	if err != nil {
		return err
	}
	s.watcher, err = watch.New(watch.Config{
		Workspace: s.workspace,
		Filter:    filter,
		Sink:      s.queue,
		Metrics:   s.metrics,
		Logger:    s.log,

		RescanInterval: cfg.Rescan,
	})
	if err != nil {
		return err
	}
	s.watchdog = newWatchdog(cfg.IdleTimeout, cfg.ExitAfterResult, s.log.Named("watchdog"))
	s.decoder, err = agent.NewDecoder(agent.Config{
		OnResult:  s.watchdog.result,
		Workspace: s.workspace,
		Sink:      s.queue,
		Metrics:   s.metrics,
		Logger:    s.log,
	})
	if err != nil {
		return err
	}

	// Whatever reads the supervisor's stdout may stall; the change hints
	// must not stall with it, so the decoder is fed apart, as output is read.
	s.output = newFanout(s.log.Named("output"))
	if s.io.stdout != nil {
		s.output.add("stdout", s.io.stdout)
	}
	if cfg.Tee != "" {
		if s.tee, err = os.OpenFile(cfg.Tee, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("unable to open --tee file: %w", err)
		}
		s.output.add("tee", s.tee)
	}
	s.observers = newFanout(s.log.Named("output"))
	if s.io.events != nil {
		s.observers.add("events", s.io.events)
	}
	s.observers.add("agent", s.decoder)
	s.observers.add("watchdog", s.watchdog)

	if cfg.Listen != "" {
		s.server = &metrics.Server{Metrics: s.metrics, Readiness: s.readiness,
			Liveness: s.liveness, Status: s.status}
		if err := s.server.Listen(cfg.Listen); err != nil {
			return fmt.Errorf("%w (set --listen to another address, or to \"\" to disable "+
				"the HTTP server)", err)
		}
	}
	return nil
}

// close releases what newSupervisor opened. It is safe on a partly built
// supervisor.
func (s *supervisor) close() {
	if s.queue != nil {
		if err := s.queue.Close(); err != nil {
			s.log.Error("unable to close the manifest", "error", err)
		}
	}
	if s.tee != nil {
		_ = s.tee.Close()
	}
	if s.stopSignals != nil {
		s.stopSignals()
	}
}

// run starts every actor and returns the exit status once the child has
// exited and the final flush is over.
func (s *supervisor) run() int {
	s.logStart()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var g run.Group

	// Only the session ends the group; every other actor runs until it is
	// interrupted, so the queue's workers are still there for the final
	// flush. The reaper, once interrupted, keeps reaping until every process
	// it started has reported (see proc.Reaper.Run).
	if s.ownsHost {
		reaperCtx, stopReaper := context.WithCancel(context.Background())
		g.Add(func() error {
			return s.liveness.Track(reaperCtx, "reaper", func() error {
				s.reaper.Run(reaperCtx)
				return nil
			})
		}, func(error) {
			stopReaper()
		})
	}

	// The HTTP server for /metrics and the probes.
	if s.server != nil {
		serveCtx, stopServe := context.WithCancel(ctx)
		g.Add(func() error {
			s.log.Info("serving metrics and probes", "addr", s.server.Addr())
			// Losing the probes must not stop the agent or its sync.
			if err := s.server.Serve(); err != nil {
				s.log.Error("the metrics and probe server stopped; restart the supervisor "+
					"to get it back", "error", err)
			}
			<-serveCtx.Done()
			return nil
		}, func(error) {
			stopServe()
			s.server.Shutdown()
		})
	}

	// The watcher. A watcher that cannot start is reported to the session,
	// which refuses to start the child without it.
	watcherFailed := make(chan error, 1)
	{
		watchCtx, stopWatch := context.WithCancel(ctx)
		g.Add(func() error {
			return s.liveness.Track(watchCtx, "watcher", func() error {
				if err := s.watcher.Run(watchCtx); err != nil {
					s.log.Error("the watcher stopped; filesystem changes now reach the "+
						"mirror only through agent events, rescans and the final scan",
						"error", err)
					s.readiness.Set(readyWatcher, "watcher stopped: "+err.Error())
					s.liveness.Died("watcher", "stopped: "+err.Error())
					watcherFailed <- err
					<-watchCtx.Done()
				}
				return nil
			})
		}, func(error) {
			stopWatch()
		})
	}

	// The queue's drain workers.
	{
		queueCtx, stopQueue := context.WithCancel(ctx)
		g.Add(func() error {
			return s.liveness.Track(queueCtx, "queue", func() error {
				return s.queue.Run(queueCtx)
			})
		}, func(error) {
			stopQueue()
		})
	}

	// The backend probe behind /readyz.
	{
		probeCtx, stopProbe := context.WithCancel(ctx)
		g.Add(func() error {
			return s.liveness.Track(probeCtx, "backend_probe", func() error {
				s.probeBackend(probeCtx)
				return nil
			})
		}, func(error) {
			stopProbe()
		})
	}

	// The session: start-up scan, the child, the final flush. Its end ends
	// the group.
	{
		sessionCtx, stopSession := context.WithCancel(ctx)
		g.Add(func() error {
			code := s.session(sessionCtx, watcherFailed)
			s.mu.Lock()
			s.exitCode = code
			s.mu.Unlock()
			return errSessionOver
		}, func(error) {
			stopSession()
		})
	}

	if err := g.Run(); err != nil && !errors.Is(err, errSessionOver) {
		s.log.Error("supervisor stopped early", "error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitCode
}

// errSessionOver ends the run group when the session returns.
var errSessionOver = errors.New("session over")

// session runs the steps of one supervised command in order and returns the
// exit status: the child's, or exitSetup when it could not get that far.
func (s *supervisor) session(ctx context.Context, watcherFailed <-chan error) int {
	defer proc.RestoreOnPanic() // the child's terminal may be raw
	// The child starts only once every directory has its watch, so that no
	// write of the agent can fall between the start-up scan and the watch.
	select {
	case <-s.watcher.Ready():
		s.readiness.Set(readyWatcher, "")
	case <-watcherFailed:
		return exitSetup
	case <-ctx.Done():
		return exitSetup
	}

	// Reconcile with the manifest: whatever changed while no supervisor
	// ran is queued now, or, with --baseline, the tree counts as synced.
	if err := s.reconcile(ctx); err != nil {
		s.log.Error("unable to compare the workspace with the manifest", "error", err)
		return exitSetup
	}
	s.readiness.Set(readyScan, "")

	status := s.runChild(ctx)
	s.flush()
	return status
}

func (s *supervisor) reconcile(ctx context.Context) error {
	start := time.Now()
	if s.cfg.Baseline {
		if err := s.queue.Baseline(ctx); err != nil {
			return err
		}
		s.log.Info("marked the workspace as synced (--baseline)",
			"duration_ms", time.Since(start).Milliseconds())
		return nil
	}
	if err := s.queue.Scan(ctx, "startup"); err != nil {
		return err
	}
	s.log.Info("start-up scan done", "queued", s.queue.Depth(),
		"duration_ms", time.Since(start).Milliseconds())
	return nil
}

// runChild starts the supervised command, waits for it and for its output,
// and returns its exit status.
func (s *supervisor) runChild(ctx context.Context) int {
	child := proc.New(proc.Config{
		Argv:         s.cfg.Argv,
		Env:          s.io.env,
		Dir:          s.io.dir,
		PTY:          !s.cfg.NoPTY,
		Stdin:        s.stdin,
		Output:       s.output,
		Observer:     s.observers,
		Grace:        childGrace(s.cfg.Grace),
		DrainTimeout: s.cfg.Drain,
		Signals:      s.signals,
		Reaper:       s.reaper,
		Logger:       s.log.Named("child"),
		Metrics:      s.metrics,
	})
	s.mu.Lock()
	s.child = child
	s.mu.Unlock()

	// A start failure is logged by the child and reported by Wait as 126 or
	// 127; serve also hands its text to the client.
	if err := child.Start(ctx); err != nil {
		s.mu.Lock()
		s.startErr = err
		s.mu.Unlock()
	}
	stopWatchdog := s.watchdog.watch(child.Stop)
	status, err := child.Wait()
	s.metrics.ChildExits.WithLabelValues(exitOutcome(status, err)).Inc()
	if err != nil && !errors.Is(err, proc.ErrNotFound) && !errors.Is(err, proc.ErrCannotExecute) {
		s.log.Warn("child output may be incomplete", "error", err)
	}
	if err := s.decoder.Close(); err != nil {
		s.log.Warn("unable to decode the last output line", "error", err)
	}
	return stopWatchdog(status.ExitCode())
}

// flush runs a last scan, for whatever the watcher has not reported yet,
// and drains the queue, both within --flush-timeout. The first terminating
// signal that arrives meanwhile does not cut it short: it is usually the
// orchestrator's stop (docker stop, E2B kill), which allows time for
// exactly this. A second one ends the flush at once; the manifest lets the
// next start finish the work.
func (s *supervisor) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Flush)
	defer cancel()
	go s.abortFlushOnSecondSignal(ctx, cancel)

	start := time.Now()
	if err := s.queue.Scan(ctx, "final"); err != nil {
		s.log.Error("final scan failed; changes made at the very end may be synced "+
			"only by the next start", "error", err)
	}
	err := s.queue.Flush(ctx)
	if err == nil {
		s.log.Info("final flush done", "duration_ms", time.Since(start).Milliseconds())
		return
	}
	pending := s.queue.Pending()
	s.mu.Lock()
	s.unsynced = pending
	s.mu.Unlock()
	s.log.Error("changes left unsynced; the next start with the same state directory "+
		"syncs them", "count", len(pending), "error", err)
	const listed = 50
	for i, p := range pending {
		if i == listed {
			s.log.Error("unsynced paths not listed", "count", len(pending)-listed)
			break
		}
		s.log.Error("unsynced", "path", p)
	}
}

func (s *supervisor) abortFlushOnSecondSignal(ctx context.Context, cancel func()) {
	stops := 0
	for {
		select {
		case sig := <-s.signals:
			if !isTerminating(sig) {
				continue
			}
			if stops++; stops == 1 {
				s.log.Warn("signal during the final flush; the flush goes on, a second "+
					"signal stops it", "signal", sig.String(),
					"flush_timeout_ms", s.cfg.Flush.Milliseconds())
				continue
			}
			s.log.Warn("second signal during the final flush; stopping it", "signal", sig.String())
			cancel()
			return
		case <-ctx.Done():
			return
		}
	}
}

func isTerminating(sig os.Signal) bool {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT:
		return true
	}
	return false
}

// probeBackend keeps the backend's readiness condition current.
func (s *supervisor) probeBackend(ctx context.Context) {
	ticker := time.NewTicker(backendCheckInterval)
	defer ticker.Stop()
	for {
		checkCtx, cancel := context.WithTimeout(ctx, backendCheckInterval)
		err := s.backend.Check(checkCtx)
		cancel()
		if err != nil {
			s.readiness.Set(readyBackend, err.Error())
		} else {
			s.readiness.Set(readyBackend, "")
		}
		s.metrics.SyncBackendUp.Set(metrics.Bool(err == nil))
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (s *supervisor) logStart() {
	cfg := s.cfg
	s.log.Info("starting",
		"version", version,
		"command", filepath.Base(cfg.Argv[0]),
		"workspace", cfg.Workspace,
		"sync", redactTarget(cfg.Sync),
		"state_dir", cfg.StateDir,
		"listen", cfg.Listen,
		"pty", !cfg.NoPTY,
		"debounce_ms", cfg.Debounce.Milliseconds(),
		"max_delay_ms", cfg.MaxDelay.Milliseconds(),
		"grace_ms", cfg.Grace.Milliseconds(),
		"flush_timeout_ms", cfg.Flush.Milliseconds(),
		"drain_timeout_ms", cfg.Drain.Milliseconds(),
		"ignore", strings.Join(cfg.Ignore, ","),
		"gitignore", cfg.Gitignore,
		"rescan_interval_ms", cfg.Rescan.Milliseconds(),
		"sync_concurrency", cfg.Concurrency,
		"max_file_size_bytes", cfg.MaxFileSize,
		"baseline", cfg.Baseline,
		"pid", os.Getpid())
}

// childEnv is the supervisor's environment less its own settings: the
// child has no use for them, and secrets among them must not reach it.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "SUPERVISOR_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// redactTarget hides the credentials a target URL might carry in its
// userinfo, query or fragment; see syncq.RedactTarget.
func redactTarget(target string) string { return syncq.RedactTarget(target) }

// teeIgnore returns an ignore pattern for a --tee file inside the
// workspace: it changes with every chunk of output and is the agent's log,
// not its work.
func (s *supervisor) teeIgnore() []string {
	if s.cfg.Tee == "" {
		return nil
	}
	abs, err := filepath.Abs(s.cfg.Tee)
	if err != nil {
		return nil
	}
	rel, err := s.workspace.Rel("", abs)
	if err != nil || rel == "" {
		return nil
	}
	return []string{"/" + globEscape(rel)}
}

// globEscape quotes the characters path.Match treats as special.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// contains reports whether dir is an ancestor of p (both absolute, clean).
func contains(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// targetIdentity names the backend for the manifest, without secrets: the
// manifest starts over when it changes, so a new target gets every file.
func (s *supervisor) targetIdentity() string {
	if dir, ok := s.backend.(*syncq.DirBackend); ok {
		return "dir:" + dir.Root()
	}
	return redactTarget(s.cfg.Sync)
}
