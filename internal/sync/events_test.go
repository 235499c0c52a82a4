package sync

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	stdsync "sync"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// eventLog collects what the queue reports through OnSynced and OnFailed.
type eventLog struct {
	mu     stdsync.Mutex
	events []string
}

func (l *eventLog) add(kind string) func(Event) {
	return func(e Event) {
		l.mu.Lock()
		defer l.mu.Unlock()
		s := fmt.Sprintf("%s %s %s bytes=%d attempt=%d", kind, e.Op, e.Path, e.Bytes, e.Attempt)
		if e.Err != nil {
			s += fmt.Sprintf(" permanent=%t", e.Permanent)
		}
		l.events = append(l.events, s)
	}
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func TestQueueReportsEverySyncedAndFailedOperation(t *testing.T) {
	var log eventLog
	f := newFixture(t, func(c *Config) {
		c.OnSynced = log.add("synced")
		c.OnFailed = log.add("failed")
	})
	failures := 1
	var mu stdsync.Mutex
	f.backend.before = func(op, path string) error {
		mu.Lock()
		defer mu.Unlock()
		if path == "flaky.txt" && failures > 0 {
			failures--
			return errors.New("backend down")
		}
		if path == "rejected.txt" {
			return fmt.Errorf("%w: too big for the backend", ErrPermanent)
		}
		return nil
	}
	f.start()

	// A put, a hint for content already synced, and a put that fails once
	// and is retried.
	f.write("a.txt", "hello")
	f.hint(change.SourceAgent, "a.txt")
	f.flush()
	f.hint(change.SourceAgent, "a.txt")
	f.write("flaky.txt", "12345678")
	f.hint(change.SourceAgent, "flaky.txt")
	f.flush()
	// A delete of a synced path, then a put the backend rejects for good.
	if err := os.Remove(filepath.Join(f.workspace, "a.txt")); err != nil {
		t.Fatal(err)
	}
	f.hint(change.SourceFS, "a.txt")
	f.flush()

	f.write("rejected.txt", "x")
	f.hint(change.SourceAgent, "rejected.txt")
	if err := f.queue.Flush(t.Context()); !errors.Is(err, ErrUnsynced) {
		t.Fatalf("Flush after a permanent failure: %v, want ErrUnsynced", err)
	}

	want := []string{
		"synced put a.txt bytes=5 attempt=1",
		"failed put flaky.txt bytes=0 attempt=1 permanent=false",
		"synced put flaky.txt bytes=8 attempt=2",
		"synced delete a.txt bytes=0 attempt=1",
		"failed put rejected.txt bytes=0 attempt=1 permanent=true",
	}
	got := log.list()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}
