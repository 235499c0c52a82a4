package main

import (
	"errors"
	"flag"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/agent"
)

// Exit statuses of a run that a watchdog ended (README, "Exit status").
const (
	// exitIdle is the status after --idle-timeout ended a silent child,
	// whatever the child's own status was: the one timeout(1) uses.
	exitIdle = 124
	// exitResultError is the status after --exit-after-result ended a
	// child whose result line reported an error; a successful result
	// gives 0. The CLI itself exits 1 after an error result.
	exitResultError = 1
)

// watchdogConfig holds the flags of the watchdogs; runConfig embeds it.
type watchdogConfig struct {
	IdleTimeout     time.Duration
	ExitAfterResult time.Duration
}

func addWatchdogFlags(fs *flag.FlagSet, cfg *watchdogConfig) {
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0,
		"end a child that printed nothing for this long (SIGTERM, then SIGKILL after "+
			"--grace) and exit with 124; 0 turns it off")
	fs.DurationVar(&cfg.ExitAfterResult, "exit-after-result", 0,
		"end a child still running this long after it printed its stream-json result "+
			"line, and exit as the result says: 0 for success, 1 for an error; 0 turns it off")
}

func (c watchdogConfig) check() error {
	if c.IdleTimeout < 0 || c.ExitAfterResult < 0 {
		return errors.New("--idle-timeout and --exit-after-result must not be negative")
	}
	return nil
}

// watchdogTick bounds how often a watchdog looks at the clock: a tenth
// of the shortest timeout, within these limits.
const (
	minWatchdogTick = 10 * time.Millisecond
	maxWatchdogTick = time.Second
)

// watchdog ends a child that hangs: one that printed nothing for
// idleTimeout (--idle-timeout), or one that printed its result line and
// has not exited afterResult later (--exit-after-result; the Claude CLI is
// known to hang there). It stops the child through the usual path,
// SIGTERM then SIGKILL after --grace, and decides the run's exit status.
// A zero duration turns that watchdog off.
//
// It learns about output as a destination of the output fan-out (behind
// the spool: a stdout nobody reads for longer than idleTimeout stalls the
// fan-out and can look like a silent child) and about the result line
// from the decoder's OnResult.
type watchdog struct {
	idleTimeout time.Duration
	afterResult time.Duration
	log         hclog.Logger
	now         func() time.Time

	mu         sync.Mutex
	lastOutput time.Time // or the child's start
	resultAt   time.Time // zero until a result line
	resultErr  bool
	fired      *verdict // set once the watchdog has stopped the child
}

// verdict is why a watchdog stopped the child and the status to exit with.
type verdict struct {
	reason string // "idle" or "after_result"
	code   int
}

func newWatchdog(idleTimeout, afterResult time.Duration, log hclog.Logger) *watchdog {
	return &watchdog{idleTimeout: idleTimeout, afterResult: afterResult, log: log, now: time.Now}
}

func (w *watchdog) enabled() bool { return w.idleTimeout > 0 || w.afterResult > 0 }

// Write records output activity; it never fails.
func (w *watchdog) Write(p []byte) (int, error) {
	if len(p) > 0 && w.idleTimeout > 0 {
		now := w.now()
		w.mu.Lock()
		w.lastOutput = now
		w.mu.Unlock()
	}
	return len(p), nil
}

// result records the agent's result line.
func (w *watchdog) result(s agent.Session) {
	now := w.now()
	w.mu.Lock()
	w.resultAt = now
	w.resultErr = s.IsError
	w.mu.Unlock()
}

// due says whether a watchdog should stop the child at now, and with what
// verdict. With both on, a result line hands the child over from the idle
// watchdog to the result watchdog: it is done whether or not it prints
// more, and gets afterResult to exit.
func (w *watchdog) due(now time.Time) (verdict, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.afterResult > 0 && !w.resultAt.IsZero() && now.Sub(w.resultAt) >= w.afterResult {
		code := 0
		if w.resultErr {
			code = exitResultError
		}
		return verdict{reason: "after_result", code: code}, true
	}
	resultWatched := w.afterResult > 0 && !w.resultAt.IsZero()
	if w.idleTimeout > 0 && !resultWatched && !w.lastOutput.IsZero() &&
		now.Sub(w.lastOutput) >= w.idleTimeout {
		return verdict{reason: "idle", code: exitIdle}, true
	}
	return verdict{}, false
}

// watch looks after a started child until stop is called, which returns
// the exit status of the run: code, the child's own, or the watchdog's
// when it ended the child. stopChild asks the child to end.
func (w *watchdog) watch(stopChild func() error) (stop func(code int) int) {
	if !w.enabled() {
		return func(code int) int { return code }
	}
	w.mu.Lock()
	w.lastOutput = w.now()
	w.mu.Unlock()

	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		w.loop(done, stopChild)
	}()
	return func(code int) int {
		close(done)
		<-ended
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.fired != nil {
			return w.fired.code
		}
		return code
	}
}

func (w *watchdog) loop(done <-chan struct{}, stopChild func() error) {
	ticker := time.NewTicker(w.tick())
	defer ticker.Stop()
	for {
		select {
		case <-done:
			return
		case <-ticker.C:
		}
		v, ok := w.due(w.now())
		if !ok {
			continue
		}
		w.mu.Lock()
		w.fired = &v
		w.mu.Unlock()
		if v.reason == "idle" {
			w.log.Warn("child printed nothing for the idle timeout; stopping it",
				"idle_timeout_ms", w.idleTimeout.Milliseconds(), "exit_code", v.code)
		} else {
			w.log.Warn("child still running after its result line; stopping it",
				"exit_after_result_ms", w.afterResult.Milliseconds(), "exit_code", v.code)
		}
		if err := stopChild(); err != nil {
			w.log.Debug("child already gone when the watchdog stopped it", "error", err)
		}
		return
	}
}

func (w *watchdog) tick() time.Duration {
	shortest := max(w.idleTimeout, w.afterResult)
	if w.idleTimeout > 0 {
		shortest = min(shortest, w.idleTimeout)
	}
	if w.afterResult > 0 {
		shortest = min(shortest, w.afterResult)
	}
	return min(max(shortest/10, minWatchdogTick), maxWatchdogTick)
}
