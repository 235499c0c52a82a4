package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// Defaults for the zero values of Config's durations.
const (
	// DefaultGrace matches the --grace default: long enough for an agent to
	// write its last result line, short enough for a container stop.
	DefaultGrace = 10 * time.Second
	// DefaultDrainTimeout bounds reading output once the child has exited;
	// only a grandchild still holding the pty or pipes makes it matter.
	DefaultDrainTimeout = 2 * time.Second
)

// NoGrace as Config.Grace sends SIGKILL right after the terminating
// signal: the child gets no time to clean up.
const NoGrace time.Duration = -1

var (
	// ErrNotStarted is returned by Wait on a child whose Start was never
	// called.
	ErrNotStarted = errors.New("child not started")
	// ErrNotRunning is returned when signalling a child that has not
	// started or has already exited.
	ErrNotRunning = errors.New("child is not running")
	// ErrDrainTimeout says output was still open DrainTimeout after the
	// child exited (a grandchild holds the pty or pipes); what came later
	// was not read.
	ErrDrainTimeout = errors.New("child output still open after the drain timeout")
	// ErrOutputAbandoned says Output still had not taken all of the child's
	// output DrainTimeout after the child exited (a stdout nobody reads);
	// the rest was dropped.
	ErrOutputAbandoned = errors.New("output destination stalled; the rest of the output was dropped")
)

// Config describes the supervised command.
type Config struct {
	// Argv is the command and its arguments; Argv[0] is looked up in the
	// PATH of Env as a shell would. It must not be empty.
	Argv []string
	// Env is the child's environment; nil means the supervisor's own. It is
	// never logged.
	Env []string
	// Dir is the working directory; empty means the supervisor's own.
	Dir string
	// PTY runs the child under a pseudo-terminal; false uses pipes.
	PTY bool
	// Stdin is the supervisor's stdin; whether it is a terminal decides
	// between interactive mode (raw terminal, keystrokes and window size
	// passed on) and batch mode (the child's stdin reads end of file, no
	// output post-processing). Nil means batch mode.
	Stdin *os.File
	// Output receives every byte the child writes, in order; a pty merges
	// stdout and stderr, pipes interleave them as they are read. Nil
	// discards the output. A slow Output slows the child, as it would
	// without a supervisor, but only until the child exits: DrainTimeout
	// later, what Output has not taken is dropped (ErrOutputAbandoned).
	Output io.Writer
	// Observer receives every byte as soon as it is read, before Output and
	// whatever Output's pace, so that a stalled Output never hides output
	// the supervisor has read from it (the agent decoder). It must be safe
	// for concurrent use and return quickly: the reader waits for it. Nil
	// means none.
	Observer io.Writer
	// Grace is how long the process group has after a terminating signal
	// before it gets SIGKILL. Zero means DefaultGrace; NoGrace (any
	// negative value) kills at once.
	Grace time.Duration
	// DrainTimeout bounds reading output after the child exits. Zero means
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// SpoolLimit bounds the output held in memory for a slow Output before
	// reading the child's output waits. Zero means DefaultSpoolLimit.
	SpoolLimit int
	// Signals delivers signals to forward to the process group, usually
	// from NotifySignals. Nil forwards none.
	Signals <-chan os.Signal
	// Reaper starts the child and reports its exit. It must not be nil.
	Reaper *Reaper
	// Logger receives the child's lifecycle logs; nil discards them.
	Logger hclog.Logger
	// Metrics, when not nil, gets the child_* metrics.
	Metrics *metrics.Metrics
}

// State is where a child is in its life, as /status reports it.
type State string

const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateExited   State = "exited"
)

// Snapshot is a child's state for /status.
type Snapshot struct {
	State State `json:"state"`
	Pid   int   `json:"pid,omitempty"`
	PTY   bool  `json:"pty"`
	// ExitCode is set once the child has exited or failed to start.
	ExitCode  *int      `json:"exit_code,omitempty"`
	Signal    string    `json:"signal,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	ExitedAt  time.Time `json:"exited_at,omitzero"`
}

// Child is one run of the supervised command. Create it with New, then
// Start it once and Wait for it.
type Child struct {
	cfg   Config
	log   hclog.Logger
	grace time.Duration
	drain time.Duration

	mu         sync.Mutex
	state      State
	begun      bool
	pid        int
	startedAt  time.Time
	exitedAt   time.Time
	status     Status
	waitErr    error
	graceTimer *time.Timer

	truncated atomic.Bool   // a reader hit the drain deadline
	done      chan struct{} // closed when Wait may return
}

// New returns a child for cfg, not yet started.
func New(cfg Config) *Child {
	c := &Child{
		cfg:   cfg,
		log:   cfg.Logger,
		grace: cfg.Grace,
		drain: cfg.DrainTimeout,
		state: StateStarting,
		done:  make(chan struct{}),
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.cfg.Output == nil {
		c.cfg.Output = io.Discard
	}
	switch {
	case c.grace == 0:
		c.grace = DefaultGrace
	case c.grace < 0:
		c.grace = 0
	}
	if c.drain <= 0 {
		c.drain = DefaultDrainTimeout
	}
	return c
}

// Start starts the child and returns once it runs. ctx bounds the child's
// life: when it is done, the child is stopped as by Stop. A command that
// cannot be executed is a *StartError; Wait then reports its exit code.
func (c *Child) Start(ctx context.Context) error {
	if err := c.begin(ctx); err != nil {
		return err
	}

	// Open the pty or pipes, and put a console in raw mode, before the
	// child exists, so that its first byte already has somewhere to go.
	s, err := openStreams(c.cfg.PTY, consoleOf(c.cfg.Stdin))
	if err != nil {
		return c.fail(err)
	}

	pid, exited, err := c.cfg.Reaper.Start(s.command(c.cfg))
	// The parent's copies of the child's ends must go: end of output
	// arrives only when nobody holds them.
	s.closeOwned()
	if err != nil {
		_ = s.restoreConsole()
		s.closeOutputs()
		return c.fail(err)
	}
	c.running(pid)

	// Read output into the spool right away: a child writing into a full
	// pty buffer blocks.
	out := newSpool(c.cfg.Output, c.cfg.SpoolLimit)
	readers := c.readOutputs(s.outputs, out)
	if s.interactive() {
		if err := s.copyKeystrokes(); err != nil {
			c.log.Error("keystrokes will not reach the child", "error", err)
		}
	}
	go c.supervise(ctx, exited, s, out, readers)
	return nil
}

// Wait returns the child's status once it has exited and its output has
// been read and written to Output, both bounded by DrainTimeout. The status
// is valid even with an error: ErrDrainTimeout, ErrOutputAbandoned, a
// failure writing Output, or the Start error, in which case the status carries the code to exit with
// (StartError.Code, or ExitCannotExecute for a failure to set up the pty).
func (c *Child) Wait() (Status, error) {
	c.mu.Lock()
	begun := c.begun
	c.mu.Unlock()
	if !begun {
		return Status{}, ErrNotStarted
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.waitErr
}

// Done is closed when Wait would return; never, if Start is not called.
func (c *Child) Done() <-chan struct{} { return c.done }

// Signal sends sig to the child's process group. A terminating signal
// (SIGTERM, SIGINT, SIGHUP, SIGQUIT) also starts the grace period, after
// which the group gets SIGKILL if the child is still running; further
// signals do not extend it. (A second SIGINT or SIGTERM arriving on
// Config.Signals during the grace period kills at once; Signal itself
// never escalates.)
func (c *Child) Signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateRunning {
		return ErrNotRunning
	}

	// The child may have been reaped a moment ago, with its exit not yet
	// recorded. Its process group id stays reserved while any member lives,
	// so the signal reaches what is left of the group or fails with ESRCH.
	err := unix.Kill(-c.pid, sig)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("unable to send %s to process group %d: %w", signalName(sig), c.pid, err)
	}
	c.log.Debug("signal forwarded", "signal", signalName(sig), "pgid", c.pid)

	if terminating(sig) && c.graceTimer == nil {
		c.log.Info("stopping child", "signal", signalName(sig), "grace_ms", c.grace.Milliseconds())
		c.graceTimer = time.AfterFunc(c.grace, c.graceOver)
	}
	return nil
}

// Stop asks the child to end: SIGTERM to its process group, then SIGKILL
// when the grace period runs out.
func (c *Child) Stop() error { return c.Signal(syscall.SIGTERM) }

// Snapshot returns the child's state for /status.
func (c *Child) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	snap := Snapshot{
		State:     c.state,
		Pid:       c.pid,
		PTY:       c.cfg.PTY,
		StartedAt: c.startedAt,
		ExitedAt:  c.exitedAt,
	}
	if c.state == StateExited {
		code := c.status.ExitCode()
		snap.ExitCode = &code
		snap.Signal = signalName(c.status.Signal)
	}
	return snap
}

func (c *Child) begin(ctx context.Context) error {
	c.mu.Lock()
	if c.begun {
		c.mu.Unlock()
		return errors.New("unable to start: child already started")
	}
	c.begun = true
	c.mu.Unlock()

	if len(c.cfg.Argv) == 0 {
		return c.fail(errors.New("unable to start: no command"))
	}
	if c.cfg.Reaper == nil {
		return c.fail(errors.New("unable to start: no reaper"))
	}
	if err := ctx.Err(); err != nil {
		return c.fail(fmt.Errorf("unable to start: %w", err))
	}
	return nil
}

// fail records a start that did not happen and returns err.
func (c *Child) fail(err error) error {
	code := ExitCannotExecute
	var startErr *StartError
	if errors.As(err, &startErr) {
		code = startErr.Code
	}

	c.mu.Lock()
	c.state = StateExited
	c.exitedAt = time.Now()
	c.status = Status{Code: code}
	c.waitErr = err
	c.mu.Unlock()
	close(c.done)

	if m := c.cfg.Metrics; m != nil {
		m.ChildExitCode.Set(float64(code))
	}
	c.log.Error("unable to start child; check the command and its permissions",
		"argv0", c.cfg.argv0(), "exit_code", code, "error", err)
	return err
}

func (c *Child) running(pid int) {
	c.mu.Lock()
	c.state = StateRunning
	c.pid = pid
	c.startedAt = time.Now()
	c.mu.Unlock()

	if m := c.cfg.Metrics; m != nil {
		m.ChildStarts.Inc()
		m.ChildRunning.Set(1)
	}
	c.log.Info("child started", "argv0", c.cfg.argv0(), "pid", pid, "pty", c.cfg.PTY)
}

// supervise forwards signals until the child exits, then restores the
// console, drains the output and releases Wait.
func (c *Child) supervise(ctx context.Context, exited <-chan Status, s *streams,
	out *spool, readers <-chan struct{}) {
	defer RestoreOnPanic()
	st := c.forwardUntilExit(ctx, exited, s)
	c.exited(st)

	// Give the terminal back before the drain, which may take DrainTimeout.
	if err := s.restoreConsole(); err != nil {
		c.log.Error("terminal may be left in raw mode; run `reset` to fix it", "error", err)
	}
	err := c.drainOutput(s, out, readers)

	c.mu.Lock()
	c.waitErr = err
	c.mu.Unlock()
	close(c.done)
}

func (c *Child) forwardUntilExit(ctx context.Context, exited <-chan Status, s *streams) Status {
	stop := ctx.Done()
	for {
		select {
		case st := <-exited:
			return st
		case sig := <-c.cfg.Signals:
			if ssig, ok := sig.(syscall.Signal); ok {
				c.forwardFromOperator(ssig)
			}
		case <-stop:
			stop = nil
			c.forward(syscall.SIGTERM)
		case <-s.winch:
			if err := s.console.copySize(s.master); err != nil {
				c.log.Warn("unable to pass on the window size", "error", err)
			}
		}
	}
}

// forwardFromOperator forwards a signal the supervisor received. A second
// SIGINT or SIGTERM while the grace period runs kills the process group at
// once: whoever sent it (a person pressing Ctrl-C twice, an orchestrator
// that gave up) does not want to wait for the rest of the grace.
func (c *Child) forwardFromOperator(sig syscall.Signal) {
	if (sig == syscall.SIGINT || sig == syscall.SIGTERM) && c.inGrace() {
		c.kill("second signal during the grace period", sig)
		return
	}
	c.forward(sig)
}

func (c *Child) inGrace() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.graceTimer != nil && c.state == StateRunning
}

func (c *Child) forward(sig syscall.Signal) {
	if err := c.Signal(sig); err != nil && !errors.Is(err, ErrNotRunning) {
		c.log.Error("unable to forward signal", "signal", signalName(sig), "error", err)
	}
}

// graceOver kills the process group of a child that outlived its grace.
func (c *Child) graceOver() {
	c.kill("grace period over", 0)
}

// kill sends SIGKILL to the child's process group now. sig is the signal
// that asked for it, if any, for the log.
func (c *Child) kill(why string, sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateRunning {
		return
	}
	// sig is the signal that cut the grace short; 0 when the grace ran out.
	args := []any{"pgid", c.pid, "grace_ms", c.grace.Milliseconds()}
	if sig != 0 {
		args = append(args, "second_signal", signalName(sig))
	}
	c.log.Warn(why+", sending SIGKILL to the process group", args...)
	if err := unix.Kill(-c.pid, syscall.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		c.log.Error("unable to kill the process group", "pgid", c.pid, "error", err)
	}
}

func (c *Child) exited(st Status) {
	c.mu.Lock()
	c.state = StateExited
	c.status = st
	c.exitedAt = time.Now()
	if c.graceTimer != nil {
		c.graceTimer.Stop()
	}
	duration := c.exitedAt.Sub(c.startedAt)
	c.mu.Unlock()

	if m := c.cfg.Metrics; m != nil {
		m.ChildRunning.Set(0)
		m.ChildExitCode.Set(float64(st.ExitCode()))
	}
	c.log.Info("child exited", "pid", st.Pid, "exit_code", st.ExitCode(),
		"signal", signalName(st.Signal), "duration_ms", duration.Milliseconds())
}

// readOutputs copies each output into the spool; the returned channel is
// closed when every copy has ended.
func (c *Child) readOutputs(outputs []*os.File, out *spool) <-chan struct{} {
	var wg sync.WaitGroup
	for _, f := range outputs {
		wg.Go(func() {
			defer RestoreOnPanic()
			c.readOutput(f, out)
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

func (c *Child) readOutput(f *os.File, out *spool) {
	// 32 KiB matches what a pty hands over per read under load.
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if m := c.cfg.Metrics; m != nil {
				m.ChildOutputBytes.Add(float64(n))
			}
			if c.cfg.Observer != nil {
				_, _ = c.cfg.Observer.Write(buf[:n])
			}
			if _, werr := out.Write(buf[:n]); werr != nil {
				return
			}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF), errors.Is(err, syscall.EIO):
			// EOF ends a pipe; EIO is how Linux says a pty master has no
			// slave left: both are the end of the output.
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.truncated.Store(true)
		default:
			c.log.Error("unable to read child output", "stream", f.Name(), "error", err)
		}
		return
	}
}

// drainOutput waits for the readers and for Output to take what the spool
// holds, both at most DrainTimeout from now.
func (c *Child) drainOutput(s *streams, out *spool, readers <-chan struct{}) error {
	deadline := time.Now().Add(c.drain)
	// A reader may wait in the spool behind a stalled Output rather than in
	// Read, where the deadline below cannot reach it, and the Output may
	// never take the rest: at the deadline the spool gives up on it.
	giveUp := time.AfterFunc(c.drain, out.Abandon)
	defer giveUp.Stop()
	for _, f := range s.outputs {
		if err := f.SetReadDeadline(deadline); err != nil {
			// Closing interrupts a read on a descriptor the poller owns,
			// which is every output the streams open; this is a fallback.
			c.log.Warn("unable to bound the output drain; closing it at the deadline",
				"stream", f.Name(), "error", err)
			timer := time.AfterFunc(c.drain, func() {
				c.truncated.Store(true)
				_ = f.Close()
			})
			defer timer.Stop()
		}
	}
	<-readers
	s.closeOutputs()
	s.stopKeystrokes()
	out.Close()
	select {
	case <-out.Flushed():
	case <-out.Abandoned():
	}

	var errs []error
	if dropped := out.Dropped(); dropped > 0 {
		c.log.Error("output destination stopped taking the child's output; dropped the rest "+
			"(is anything reading the supervisor's stdout and --tee?)",
			"dropped_bytes", dropped, "drain_timeout_ms", c.drain.Milliseconds())
		errs = append(errs, ErrOutputAbandoned)
	}
	if c.truncated.Load() {
		c.log.Warn("child output still open after the child exited; stopped reading it",
			"drain_timeout_ms", c.drain.Milliseconds())
		errs = append(errs, ErrDrainTimeout)
	}
	if err := out.Err(); err != nil {
		c.log.Error("unable to write child output", "error", err)
		errs = append(errs, fmt.Errorf("unable to write child output: %w", err))
	}
	return errors.Join(errs...)
}

func (cfg Config) argv0() string {
	if len(cfg.Argv) == 0 {
		return ""
	}
	return cfg.Argv[0]
}
