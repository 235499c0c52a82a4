package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/oklog/run"

	"github.com/agent-supervisor/supervisor/internal/control"
	"github.com/agent-supervisor/supervisor/internal/metrics"
	"github.com/agent-supervisor/supervisor/internal/proc"
	syncq "github.com/agent-supervisor/supervisor/internal/sync"
)

// readyControl is the daemon's readiness condition: the control API
// answers and a run can be taken.
const readyControl = "control"

// serveConfig is what `supervisor serve` was asked to do. The settings of
// each run come from its request and, where it is silent, from the
// daemon's SUPERVISOR_<NAME> environment, as for `supervisor run`.
type serveConfig struct {
	Socket           string
	ControlListen    string
	ControlTokenFile string
	Listen           string
	EventBuffer      int
	Subreaper        bool
	LogLevel         string
	LogFormat        string

	controlToken secret
}

func newServeFlags(cfg *serveConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "usage: supervisor serve [flags]\n\n"+
			"Waits for runs over the control API (docs/control-api.md); `supervisor submit`\n"+
			"is its client. Each flag also reads SUPERVISOR_<NAME>. The flags of `supervisor\n"+
			"run` are taken per run, from the request or else from SUPERVISOR_<NAME>. Flags:\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Socket, "socket", control.DefaultSocket(),
		"unix socket for the control API; only this user (and root) may connect")
	fs.StringVar(&cfg.ControlListen, "control-listen", "",
		"also serve the control API on this TCP address, with --control-token-file "+
			"required; empty (the default) keeps it on the socket only")
	fs.StringVar(&cfg.ControlTokenFile, "control-token-file", "",
		"file holding the bearer token that TCP requests must carry")
	fs.StringVar(&cfg.Listen, "listen", defaultListen,
		"address for /metrics, /healthz, /readyz and /status; empty disables")
	fs.IntVar(&cfg.EventBuffer, "event-buffer", control.DefaultBufferBytes,
		"bytes of events kept per run for streams that resume; a reader further behind "+
			"is told how many it missed")
	fs.BoolVar(&cfg.Subreaper, "subreaper", true,
		"when not PID 1, become a child subreaper so orphaned grandchildren are reaped here")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "text or json (logs always go to stderr)")
	return fs
}

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	cfg := &serveConfig{}
	fs := newServeFlags(cfg, stderr)
	if err := parseWithEnv(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve takes no command (%q); submit one with "+
			"`supervisor submit -- COMMAND`", fs.Arg(0))
	}
	if cfg.ControlListen != "" {
		if cfg.ControlTokenFile == "" {
			return nil, errors.New("--control-listen needs --control-token-file: the " +
				"control API starts commands and must not be open on TCP without a token")
		}
		data, err := os.ReadFile(cfg.ControlTokenFile)
		if err != nil {
			return nil, fmt.Errorf("unable to read --control-token-file: %w", err)
		}
		if cfg.controlToken = secret(strings.TrimSpace(string(data))); cfg.controlToken == "" {
			return nil, errors.New("--control-token-file is empty")
		}
	}
	if hclog.LevelFromString(cfg.LogLevel) == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level must be trace, debug, info, warn or error, not %q",
			cfg.LogLevel)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format must be text or json, not %q", cfg.LogFormat)
	}
	return cfg, nil
}

// serveCommand implements `supervisor serve`: the daemon for platforms
// whose start command runs before the prompt is known (E2B templates).
func serveCommand(args []string, stderr io.Writer) int {
	cfg, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "supervisor serve: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	d, err := newDaemon(cfg, log)
	if err != nil {
		log.Error("unable to start", "error", err)
		return exitSetup
	}
	return d.run()
}

// daemon holds what `serve` keeps between runs: the host (metrics,
// reaper), the HTTP server, the control API, and the run in progress.
type daemon struct {
	cfg       *serveConfig
	log       hclog.Logger
	host      *host
	readiness *metrics.Readiness
	server    *metrics.Server // nil when --listen is empty
	control   *control.Server
	unixL     net.Listener
	tcpL      net.Listener // nil without --control-listen

	signals     <-chan os.Signal
	stopSignals func()

	mu      sync.Mutex
	current *supervisor // the run in progress or the last one; nil before the first
	active  *control.Run
	runs    sync.WaitGroup
	// stopping refuses new runs once a terminating signal has come.
	stopping bool
}

func newDaemon(cfg *serveConfig, log hclog.Logger) (*daemon, error) {
	d := &daemon{
		cfg:       cfg,
		log:       log,
		readiness: metrics.NewReadiness(readyControl),
	}
	// As in run: signals first, and a reader that goes away must not kill
	// the daemon with SIGPIPE.
	d.signals, d.stopSignals = proc.NotifySignals()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	d.host = newHost(log, cfg.Subreaper)
	d.host.metrics.Ready.Sample(func() float64 {
		ready, _ := d.readiness.Ready()
		return metrics.Bool(ready)
	})
	d.control = &control.Server{Starter: d, Version: version, BufferBytes: cfg.EventBuffer,
		Logger: log.Named("control")}

	var err error
	if d.unixL, err = control.ListenUnix(cfg.Socket); err != nil {
		d.close()
		return nil, err
	}
	if cfg.ControlListen != "" {
		if d.tcpL, err = net.Listen("tcp", cfg.ControlListen); err != nil {
			d.close()
			return nil, fmt.Errorf("unable to listen on --control-listen: %w", err)
		}
	}
	if cfg.Listen != "" {
		d.server = &metrics.Server{Metrics: d.host.metrics, Readiness: d.readiness,
			Liveness: d.host.liveness, Status: d.status}
		if err := d.server.Listen(cfg.Listen); err != nil {
			d.close()
			return nil, fmt.Errorf("%w (set --listen to another address, or to \"\" to "+
				"disable the HTTP server)", err)
		}
	}
	return d, nil
}

func (d *daemon) close() {
	if d.unixL != nil {
		_ = d.unixL.Close()
	}
	if d.tcpL != nil {
		_ = d.tcpL.Close()
	}
	d.stopSignals()
}

// run serves until a terminating signal, then stops the run in progress,
// waits for its final flush and returns 0.
func (d *daemon) run() int {
	defer d.close()
	var g run.Group

	// The reaper outlives every run; once interrupted it keeps reaping
	// until every process it started has reported.
	{
		ctx, stop := context.WithCancel(context.Background())
		g.Add(func() error {
			return d.host.liveness.Track(ctx, "reaper", func() error {
				d.host.reaper.Run(ctx)
				return nil
			})
		}, func(error) {
			stop()
		})
	}

	// The metrics and probe server.
	if d.server != nil {
		done := make(chan struct{})
		g.Add(func() error {
			d.log.Info("serving metrics and probes", "addr", d.server.Addr())
			if err := d.server.Serve(); err != nil {
				d.log.Error("the metrics and probe server stopped; restart the daemon "+
					"to get it back", "error", err)
			}
			<-done
			return nil
		}, func(error) {
			d.server.Shutdown()
			close(done)
		})
	}

	// The control API, on the socket and optionally on TCP. Either one
	// failing ends the daemon: without it no run can be taken.
	{
		g.Add(func() error {
			d.log.Info("serving the control API", "socket", d.cfg.Socket)
			d.readiness.Set(readyControl, "")
			return d.control.ServeUnix(d.unixL)
		}, func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			d.readiness.Set(readyControl, "shutting down")
			d.control.Shutdown(ctx)
		})
		if d.tcpL != nil {
			g.Add(func() error {
				d.log.Info("serving the control API on TCP", "addr", d.tcpL.Addr().String())
				return d.control.ServeTCP(d.tcpL, string(d.cfg.controlToken))
			}, func(error) {})
		}
	}

	// Signals: a terminating one stops the run in progress and, once its
	// flush is over, the daemon; others go to the run.
	{
		stop := make(chan struct{})
		g.Add(func() error {
			return d.handleSignals(stop)
		}, func(error) {
			close(stop)
		})
	}

	d.log.Info("waiting for runs", "version", version, "socket", d.cfg.Socket,
		"control_listen", d.cfg.ControlListen, "listen", d.cfg.Listen, "pid", os.Getpid())
	err := g.Run()
	d.runs.Wait()
	if err != nil && !errors.Is(err, errDaemonStopped) {
		d.log.Error("daemon stopped early", "error", err)
		return exitSetup
	}
	return 0
}

var errDaemonStopped = errors.New("daemon stopped")

func (d *daemon) handleSignals(stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		case sig := <-d.signals:
			d.mu.Lock()
			active := d.active
			d.stopping = d.stopping || isTerminating(sig)
			d.mu.Unlock()
			if active != nil {
				_ = active.Signal(sig.(syscall.Signal))
			}
			if !isTerminating(sig) {
				continue
			}
			d.log.Info("stopping", "signal", sig.String(), "run_in_progress", active != nil)
			// Further signals still reach the run: a second SIGTERM during
			// its grace kills it at once, as with `supervisor run`.
			go d.forwardSignals(stop)
			d.runs.Wait()
			return errDaemonStopped
		}
	}
}

func (d *daemon) forwardSignals(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case sig := <-d.signals:
			d.mu.Lock()
			if d.active != nil {
				_ = d.active.Signal(sig.(syscall.Signal))
			}
			d.mu.Unlock()
		}
	}
}

// Start builds a run from its request and starts it in the background. It
// implements control.Starter; the control server admits one run at a time.
func (d *daemon) Start(req control.StartRequest, r *control.Run) error {
	// The run counts from here, so that a daemon stopping meanwhile waits
	// for it.
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return errors.New("the daemon is stopping and takes no more runs")
	}
	d.runs.Add(1)
	d.mu.Unlock()
	started := false
	defer func() {
		if !started {
			d.runs.Done()
		}
	}()

	cfg, err := runConfigFor(req)
	if err != nil {
		return fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	// The child works in the workspace unless the request says otherwise,
	// as docs/control-api.md promises; the daemon's own directory is no
	// place for it.
	dir := req.Dir
	if dir == "" {
		dir = cfg.Workspace
	}
	log := d.log.With("run", r.ID())
	events := r.Events()
	lines := control.NewLineWriter(events)
	s, err := newRunSupervisor(d.host, cfg, log, runIO{
		events:  lines,
		signals: r.Signals(),
		env:     append(childEnv(os.Environ()), envList(req.Env)...),
		dir:     dir,
		onSynced: func(e syncq.Event) {
			events.AppendJSON(control.EventSynced,
				control.SyncedData{Op: e.Op, Path: e.Path, Bytes: e.Bytes})
		},
		onFailed: func(e syncq.Event) {
			events.AppendJSON(control.EventSyncFailed, control.SyncFailedData{Op: e.Op,
				Path: e.Path, Attempt: e.Attempt, Error: e.Err.Error(), Permanent: e.Permanent})
		},
	})
	if errors.Is(err, errUsage) {
		return fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	if err != nil {
		return err
	}
	// observe pointed the readiness gauge at the run; the daemon's own
	// readiness is what the probes answer.
	d.host.metrics.Ready.Sample(func() float64 {
		ready, _ := d.readiness.Ready()
		return metrics.Bool(ready)
	})
	r.Observe(func() (bool, string, any) {
		ready, reason := s.readiness.Ready()
		return ready, reason, s.status()
	})

	d.mu.Lock()
	d.current, d.active = s, r
	if d.stopping {
		// The stop came while the run was being built: it gets the signal
		// the others got, once its child starts.
		_ = r.Signal(syscall.SIGTERM)
	}
	d.mu.Unlock()
	started = true
	go func() {
		defer d.runs.Done()
		r.Started()
		code := s.run()
		_ = lines.Close()
		s.close()
		s.mu.Lock()
		unsynced, startErr := s.unsynced, s.startErr
		s.mu.Unlock()
		d.mu.Lock()
		d.active = nil
		d.mu.Unlock()
		log.Info("run over", "exit_code", code, "unsynced", len(unsynced))
		// Finish last: the next run may start as soon as it is called, and
		// must find the manifest closed.
		reason := ""
		if startErr != nil {
			reason = startErr.Error()
		}
		r.FinishWithError(code, unsynced, reason)
	}()
	return nil
}

// daemonFlags are the run flags that belong to the daemon, not to a run.
var daemonFlags = map[string]bool{
	"listen": true, "subreaper": true, "log-level": true, "log-format": true,
}

// runConfigFor turns a request into the configuration of one run: the
// request's settings, then the daemon's SUPERVISOR_<NAME> environment, then
// run's defaults. The HTTP server is the daemon's, never the run's.
func runConfigFor(req control.StartRequest) (*runConfig, error) {
	var args []string
	for _, o := range req.Options {
		name, _, _ := strings.Cut(strings.TrimPrefix(o, "--"), "=")
		if !strings.HasPrefix(o, "--") || name == "" || daemonFlags[name] {
			return nil, fmt.Errorf("option %q: want --name=value for a flag of `supervisor run` "+
				"other than --listen, --subreaper and the log flags", o)
		}
		args = append(args, o)
	}
	workspace := req.Workspace
	if workspace == "" && os.Getenv("SUPERVISOR_WORKSPACE") == "" {
		workspace = req.Dir
	}
	if workspace != "" {
		args = append(args, "--workspace="+workspace)
	}
	if req.Sync != "" {
		args = append(args, "--sync="+req.Sync)
	}
	if req.SyncToken != "" {
		// The request's token replaces the daemon's; a daemon token file
		// beside it would be refused as ambiguous.
		args = append(args, "--sync-token-file=")
	}
	args = append(append(args, "--"), req.Argv...)
	cfg, err := parseRun(args, io.Discard)
	if err != nil {
		return nil, err
	}
	if req.SyncToken != "" {
		cfg.syncToken = secret(req.SyncToken)
	}
	cfg.Listen = ""
	return cfg, nil
}

// envList turns the request's variables into KEY=VALUE entries in a fixed
// order.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if strings.HasPrefix(k, "SUPERVISOR_") {
			continue
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// daemonStatus is the document served on the daemon's /status.
type daemonStatus struct {
	Version  string `json:"version"`
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready_reason,omitempty"`
	// Busy names the run in progress, if any.
	Busy string `json:"busy,omitempty"`
	// Run is the /status document of the run in progress, or of the last
	// one.
	Run any `json:"run,omitempty"`
}

func (d *daemon) status() any {
	ready, reason := d.readiness.Ready()
	doc := daemonStatus{Version: version, Ready: ready, NotReady: reason,
		Busy: d.control.Busy()}
	d.mu.Lock()
	current := d.current
	d.mu.Unlock()
	if current != nil {
		doc.Run = current.status()
	}
	return doc
}
