package proc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testReaper is the one reaper of the test process, which is a child
// subreaper so that orphans of the children it starts come back to it.
var testReaper *Reaper

func TestMain(m *testing.M) {
	// Started under nohup, the tests would hand their children SIGHUP
	// ignored, and a shell cannot trap a signal ignored on entry. Catching
	// it, as the supervisor does, gives each child the default instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	if err := SetSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testReaper = NewReaper(nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		testReaper.Run(ctx)
		close(stopped)
	}()

	code := m.Run()

	cancel()
	<-stopped
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testTimeout bounds every child a test starts: a hung child is stopped
// and fails its test instead of the whole run.
const testTimeout = 20 * time.Second

// recorder is an Output that tests can wait on.
type recorder struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(p)
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// waitFor blocks until the output contains s.
func (r *recorder) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(testTimeout)
	for !strings.Contains(r.String(), s) {
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("output never contained %q; got %q", s, r.String())
		}
	}
}

// start starts a child of cfg under testReaper and stops it, if still
// running, when the test ends.
func start(t *testing.T, cfg Config) (*Child, *recorder) {
	t.Helper()
	out := newRecorder()
	if cfg.Output == nil {
		cfg.Output = out
	}
	cfg.Reaper = testReaper
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	c := New(cfg)
	t.Cleanup(func() {
		cancel()
		<-c.Done()
	})
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start(%q): %v", cfg.Argv, err)
	}
	return c, out
}

// wait returns the child's status, failing the test on a Wait error.
func wait(t *testing.T, c *Child) Status {
	t.Helper()
	st, err := c.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

// modes runs f once with a pty and once with pipes.
func modes(t *testing.T, f func(t *testing.T, usePTY bool)) {
	for _, usePTY := range []bool{true, false} {
		name := "pipes"
		if usePTY {
			name = "pty"
		}
		t.Run(name, func(t *testing.T) { f(t, usePTY) })
	}
}
