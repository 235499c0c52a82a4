package proc

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawConsoles are the terminals the supervisor has put in raw mode and not
// yet restored. A supervisor that dies with its terminal in raw mode leaves
// the person at it with a shell that echoes nothing and ignores Enter, so
// every way out restores them: the child's exit, a panic (RestoreOnPanic)
// and a fatal signal (the catcher started with the first raw console).
var rawConsoles struct {
	mu       sync.Mutex
	consoles map[*console]struct{}
	// stopCatching ends the fatal-signal catcher; nil while none runs.
	stopCatching func()
}

// FatalSignals are the signals that would end the supervisor with a stack
// dump (the Go runtime's default for them) and that it catches while a
// terminal is in raw mode, to restore the terminal before dying of them.
// SIGTERM, SIGINT, SIGHUP and SIGQUIT are not among them: they are
// forwarded to the child and end the supervisor the normal way.
var FatalSignals = []os.Signal{syscall.SIGABRT, syscall.SIGSYS, syscall.SIGSTKFLT}

func registerRaw(c *console) {
	rawConsoles.mu.Lock()
	defer rawConsoles.mu.Unlock()
	if rawConsoles.consoles == nil {
		rawConsoles.consoles = make(map[*console]struct{})
	}
	rawConsoles.consoles[c] = struct{}{}
	if rawConsoles.stopCatching == nil {
		rawConsoles.stopCatching = catchFatalSignals()
	}
}

func unregisterRaw(c *console) {
	rawConsoles.mu.Lock()
	defer rawConsoles.mu.Unlock()
	delete(rawConsoles.consoles, c)
	if len(rawConsoles.consoles) == 0 && rawConsoles.stopCatching != nil {
		rawConsoles.stopCatching()
		rawConsoles.stopCatching = nil
	}
}

// RestoreTerminals gives back their saved mode to every terminal the
// supervisor put in raw mode and has not restored yet. It is safe from any
// goroutine and at any time; a terminal is restored once.
func RestoreTerminals() {
	rawConsoles.mu.Lock()
	consoles := make([]*console, 0, len(rawConsoles.consoles))
	for c := range rawConsoles.consoles {
		consoles = append(consoles, c)
	}
	rawConsoles.mu.Unlock()
	for _, c := range consoles {
		_ = c.restore()
	}
}

// RestoreOnPanic restores the terminals and panics on with the same value
// when the goroutine that defers it is panicking. Defer it first thing in
// every goroutine the supervisor starts that can run while a terminal is
// raw: a panic ends the process without running the deferred calls of any
// other goroutine.
//
// Known gaps, which leave the terminal raw (`reset` fixes it): a fatal
// error of the runtime (a concurrent map write, running out of memory)
// cannot be recovered; and the goroutines of the watch, sync and metrics
// packages do not defer RestoreOnPanic, so a panic there is not seen. A
// helper process that restores the terminal when the supervisor's end of
// a pipe closes would cover both, at the cost of one more process.
func RestoreOnPanic() {
	if v := recover(); v != nil {
		RestoreTerminals()
		panic(v)
	}
}

// catchFatalSignals restores the terminals on the first of FatalSignals,
// then dies of that signal as it would have without the catch. It runs
// while a terminal is raw; the returned function stops it.
func catchFatalSignals() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, FatalSignals...)
	stopped := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			RestoreTerminals()
			signal.Reset(sig)
			_ = unix.Kill(unix.Getpid(), sig.(syscall.Signal))
		case <-stopped:
		}
	}()
	// Restoring the last raw terminal stops the catcher, from its own
	// goroutine too when a signal was caught: stop must not wait for it.
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(stopped)
		})
	}
}
