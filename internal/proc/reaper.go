package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// ErrReaperStopped is returned by Reaper.Start once the reaper's Run has
// been asked to stop: a process started then might never be reaped.
var ErrReaperStopped = errors.New("reaper is stopping")

// Status is how a process ended, as wait reported it.
type Status struct {
	Pid int
	// Code is the exit code the process passed to exit, or -1 when a
	// signal killed it.
	Code int
	// Signal is the signal that killed the process, or 0 when it exited.
	Signal     syscall.Signal
	CoreDumped bool
}

// ExitCode is the status a shell would report: Code, or 128+N when signal
// N killed the process.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

func (s Status) String() string {
	if s.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%v)", int(s.Signal), s.Signal)
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

func statusOf(pid int, ws unix.WaitStatus) Status {
	if ws.Signaled() {
		return Status{Pid: pid, Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return Status{Pid: pid, Code: ws.ExitStatus()}
}

// Reaper waits on the whole process table. It hands the status of each
// process started through Start to that process's channel, and reaps and
// logs every other child: orphans reparented to the supervisor when it is
// PID 1 or a child subreaper.
//
// Exactly one Reaper may run in a process. Create it before starting any
// process, so that SIGCHLD is caught from the start.
type Reaper struct {
	log     hclog.Logger
	sigchld chan os.Signal
	orphans atomic.Uint64

	// mu is held across fork and registration in Start, and across each
	// wait-and-dispatch pass in reap. Without it a child that exits at once
	// could be reaped between fork and registration, taken for an orphan,
	// and its status lost. It also keeps reap away from the wait that
	// syscall.ForkExec itself does on a child whose exec failed.
	mu       sync.Mutex
	waiters  map[int]chan Status
	stopping bool
}

// NewReaper returns a reaper that already catches SIGCHLD; call Run to
// start reaping. A nil log discards the reaper's logs.
func NewReaper(log hclog.Logger) *Reaper {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r := &Reaper{
		log: log,
		// One slot is enough: a pending SIGCHLD means "reap until wait says
		// there is nothing left", so signals that coalesce lose nothing.
		sigchld: make(chan os.Signal, 1),
		waiters: make(map[int]chan Status),
	}
	signal.Notify(r.sigchld, syscall.SIGCHLD)
	return r
}

// SetSubreaper makes the calling process a child subreaper: orphaned
// descendants are reparented to it instead of to PID 1, so the Reaper
// collects them. Main calls it when the supervisor is not PID 1.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("unable to become a child subreaper: %w", err)
	}
	return nil
}

// Run reaps children until ctx is done. After that it refuses new starts
// and keeps reaping until every process started through Start has been
// reported, so a child stopping in response to the same shutdown still has
// its status delivered. Run must therefore be the last actor to stop.
func (r *Reaper) Run(ctx context.Context) {
	defer signal.Stop(r.sigchld)

	// A child may have exited between NewReaper and Run.
	r.reap()

	stop := ctx.Done()
	for {
		select {
		case <-r.sigchld:
			if !r.reap() {
				return
			}
		case <-stop:
			stop = nil
			r.mu.Lock()
			r.stopping = true
			pending := len(r.waiters)
			r.mu.Unlock()
			if pending == 0 {
				return
			}
			r.log.Debug("waiting for started processes before stopping", "pending", pending)
		}
	}
}

// Orphans reports how many processes the reaper collected that nobody
// started through it.
func (r *Reaper) Orphans() uint64 { return r.orphans.Load() }

// reap collects every child that has exited and dispatches its status. It
// reports whether Run should keep going.
func (r *Reaper) reap() bool {
	r.mu.Lock()
	defer r.mu.Unlock()

	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) || (err == nil && pid <= 0) {
			break
		}
		if err != nil {
			r.log.Error("unable to wait for children; exit statuses may be lost", "error", err)
			break
		}
		r.dispatch(statusOf(pid, ws))
	}
	return !r.stopping || len(r.waiters) > 0
}

// dispatch hands st to whoever started its pid. The caller holds mu.
func (r *Reaper) dispatch(st Status) {
	ch, ok := r.waiters[st.Pid]
	if !ok {
		r.orphans.Add(1)
		r.log.Debug("reaped orphan", "pid", st.Pid, "exit_code", st.ExitCode())
		return
	}
	delete(r.waiters, st.Pid)
	ch <- st // buffered, and each pid is reported once
}

// Start starts cmd and registers it, so that its status arrives on done
// (buffered; it receives exactly one value). A failure to execute the
// command is a *StartError carrying exit code 126 or 127.
func (r *Reaper) Start(cmd Command) (pid int, done <-chan Status, err error) {
	if len(cmd.Argv) == 0 {
		return 0, nil, errors.New("unable to start a process: empty argv")
	}
	path := cmd.Path
	if path == "" {
		path, err = LookPath(cmd.Argv[0], cmd.environ())
		if err != nil {
			return 0, nil, err
		}
	}
	if err := checkDir(cmd.Argv[0], cmd.Dir); err != nil {
		return 0, nil, err
	}

	files, closeDevNull, err := cmd.childFiles()
	if err != nil {
		return 0, nil, err
	}
	defer closeDevNull()

	attr := &syscall.ProcAttr{Dir: cmd.Dir, Env: cmd.environ(), Files: files, Sys: cmd.sys()}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return 0, nil, ErrReaperStopped
	}
	pid, err = syscall.ForkExec(path, cmd.Argv, attr)
	// The files' finalizers must not close the descriptors before the fork
	// has duplicated them: the caller may hold no other reference.
	runtime.KeepAlive(cmd)
	if err != nil {
		return 0, nil, execError(cmd.Argv[0], path, err)
	}
	ch := make(chan Status, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}
