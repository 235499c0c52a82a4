package control

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// signalQueue is how many signals a run holds before the child takes
// them; the child forwards them as they come, so more would mean a stuck
// child, and the sender is told instead of blocked.
const signalQueue = 8

// Run is the daemon's handle on one run: its events, the signals sent to
// it through the API, and its state. The Starter reports through it; the
// server reads it.
type Run struct {
	id      string
	command string
	created time.Time
	events  *Buffer
	signals chan os.Signal

	mu       sync.Mutex
	state    string
	ended    time.Time
	exitCode int
	probe    func() (ready bool, reason string, detail any)
}

func newRun(id string, argv []string, events *Buffer, now time.Time) *Run {
	return &Run{
		id:      id,
		command: filepath.Base(argv[0]),
		created: now,
		events:  events,
		signals: make(chan os.Signal, signalQueue),
		state:   StateStarting,
	}
}

// ID names the run in the API.
func (r *Run) ID() string { return r.id }

// Events is the run's event buffer; the Starter appends to it.
func (r *Run) Events() *Buffer { return r.events }

// Signals delivers the signals sent through the API, to be forwarded to
// the child's process group as if the daemon had received them.
func (r *Run) Signals() <-chan os.Signal { return r.signals }

// Observe sets what GET /v1/runs/{id} reports about the run while it is
// held: its readiness and a status document. It may be called again.
func (r *Run) Observe(probe func() (ready bool, reason string, detail any)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probe = probe
}

// Started marks the run as running.
func (r *Run) Started() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == StateStarting {
		r.state = StateRunning
	}
}

// Finish ends the run: the exit event closes its stream and the daemon
// takes the next run. Call it once everything the run opened is closed.
func (r *Run) Finish(exitCode int, unsynced []string) {
	r.FinishWithError(exitCode, unsynced, "")
}

// FinishWithError is Finish for a run whose command never ran: reason says
// why, for the client to show.
func (r *Run) FinishWithError(exitCode int, unsynced []string, reason string) {
	r.mu.Lock()
	if r.state == StateExited {
		r.mu.Unlock()
		return
	}
	r.state, r.exitCode, r.ended = StateExited, exitCode, time.Now()
	r.mu.Unlock()
	r.events.AppendJSON(EventExit, ExitData{ExitCode: exitCode, Unsynced: unsynced,
		Error: reason})
	r.events.Close()
}

func (r *Run) finished() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == StateExited
}

// Signal queues sig for the child, as the API's signal and stop do; the
// daemon uses it to stop a run when it is stopped itself.
func (r *Run) Signal(sig syscall.Signal) error {
	if r.finished() {
		return ErrFinished
	}
	select {
	case r.signals <- sig:
		return nil
	default:
		return fmt.Errorf("unable to queue %s: %d signals are already waiting for the child",
			sig, signalQueue)
	}
}

func (r *Run) info() RunInfo {
	r.mu.Lock()
	info := RunInfo{ID: r.id, State: r.state, Command: r.command, CreatedAt: r.created}
	if r.state == StateExited {
		ended, code := r.ended, r.exitCode
		info.EndedAt, info.ExitCode = &ended, &code
	}
	probe := r.probe
	r.mu.Unlock()
	if probe != nil {
		info.Ready, info.NotReady, info.Detail = probe()
	}
	info.LastEventID = r.events.last()
	return info
}

// signalNames are the signals the API forwards; the same set the
// supervisor forwards from its own process.
var signalNames = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM,
	"SIGINT":  syscall.SIGINT,
	"SIGHUP":  syscall.SIGHUP,
	"SIGQUIT": syscall.SIGQUIT,
	"SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2,
}

// ParseSignal turns "SIGINT" or "INT" into the signal.
func ParseSignal(name string) (syscall.Signal, error) {
	if sig, ok := signalNames[name]; ok {
		return sig, nil
	}
	if sig, ok := signalNames["SIG"+name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("%w: signal %q is not one of SIGTERM, SIGINT, SIGHUP, SIGQUIT, "+
		"SIGUSR1, SIGUSR2", ErrInvalid, name)
}
