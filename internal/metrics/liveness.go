package metrics

import (
	"context"
	"sort"
	"strings"
	"sync"
)

// Liveness answers /healthz: the supervisor is alive while every loop it
// tracks runs, or has been stopped on purpose. A loop that ends on its own
// (the queue's scheduler returning an error, the watcher losing inotify)
// is dead until it runs again, and /healthz names it. A loop that hangs
// without returning is not noticed: that would take a heartbeat in every
// loop, which none has yet.
type Liveness struct {
	mu   sync.Mutex
	dead map[string]string // loop name -> why it ended
}

// NewLiveness returns a Liveness with no dead loop.
func NewLiveness() *Liveness { return &Liveness{dead: make(map[string]string)} }

// Track runs loop as the loop called name and returns its error. The loop
// counts as alive while it runs (a run of the same name clears an earlier
// death); if it returns before ctx is done, nobody stopped it, and it
// counts as dead with its error, or "stopped" when it returned none. A nil
// Liveness just runs loop.
func (l *Liveness) Track(ctx context.Context, name string, loop func() error) error {
	if l == nil {
		return loop()
	}
	l.mu.Lock()
	delete(l.dead, name)
	l.mu.Unlock()

	err := loop()
	if ctx.Err() == nil {
		why := "stopped"
		if err != nil {
			why = "stopped: " + err.Error()
		}
		l.Died(name, why)
	}
	return err
}

// Died marks the loop called name as dead for a reason an operator can
// read, for a loop that reports its own end rather than returning.
func (l *Liveness) Died(name, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead[name] = why
}

// Alive reports whether no tracked loop is dead; when one is, the reason
// lists each as "name: why", sorted by name.
func (l *Liveness) Alive() (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var dead []string
	for name, why := range l.dead {
		dead = append(dead, name+": "+why)
	}
	sort.Strings(dead)
	return len(dead) == 0, strings.Join(dead, "; ")
}
