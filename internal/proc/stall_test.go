package proc

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// A stdout nobody reads slows the child, as it would without a
// supervisor, but hides nothing the supervisor has read from the observer;
// once the child is gone, DrainTimeout bounds the wait for it.
func TestChildStalledOutputSlowsTheChildButNeitherTheObserverNorTheExit(t *testing.T) {
	modes(t, func(t *testing.T, usePTY bool) {
		stalled := &gatedWriter{gate: make(chan struct{})}
		// Registered before start's cleanup, so it runs after the child is
		// done: the spool's writer, blocked in stalled, can then end.
		t.Cleanup(func() { close(stalled.gate) })
		observer := newRecorder()
		const limit = 64 << 10
		c, _ := start(t, Config{
			Argv:         []string{"sh", "-c", "printf 'marker\\n'; exec head -c 4000000 /dev/zero"},
			PTY:          usePTY,
			Output:       stalled,
			Observer:     observer,
			SpoolLimit:   limit,
			DrainTimeout: 200 * time.Millisecond,
		})
		observer.waitFor(t, "marker\n")
		for observer.len() < limit {
			select {
			case <-observer.changed:
			case <-time.After(testTimeout):
				t.Fatalf("observer got %d bytes, want the spool's %d at least", observer.len(), limit)
			}
		}
		if st := c.Snapshot().State; st != StateRunning {
			t.Errorf("child state %s with its output stalled, want running (backpressure)", st)
		}

		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Wait still blocked 10 s after the child was stopped, behind a stalled Output")
		}
		st, err := c.Wait()
		if st.ExitCode() != 143 {
			t.Errorf("exit code = %d, want 143", st.ExitCode())
		}
		if !errors.Is(err, ErrOutputAbandoned) {
			t.Errorf("Wait error = %v, want ErrOutputAbandoned", err)
		}
	})
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Len()
}

func TestSpoolAbandonDropsAndCountsWhatAStalledWriterHasNotTaken(t *testing.T) {
	w := &gatedWriter{gate: make(chan struct{})}
	s := newSpool(w, 1000)
	if _, err := s.Write(bytes.Repeat([]byte("a"), 1000)); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Write(bytes.Repeat([]byte("b"), 10))
		blocked <- err
	}()

	s.Abandon()
	select {
	case err := <-blocked:
		if err != nil {
			t.Errorf("write held at the limit returned %v after Abandon, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write held at the limit did not return after Abandon")
	}
	select {
	case <-s.Abandoned():
	default:
		t.Error("Abandoned is not closed after Abandon")
	}
	if _, err := s.Write([]byte("later")); err != nil {
		t.Errorf("write after Abandon = %v, want nil", err)
	}
	if got := s.Dropped(); got != 1000+10+5 {
		t.Errorf("dropped %d bytes, want %d", got, 1000+10+5)
	}

	close(w.gate)
	s.Close()
	<-s.Flushed()
	if got := w.buf.String(); strings.Contains(got, "b") || strings.Contains(got, "later") {
		t.Errorf("writer got %q after Abandon, want nothing queued later", got)
	}
}

func TestSpoolAbandonAfterFlushDropsNothing(t *testing.T) {
	var w bytes.Buffer
	s := newSpool(&w, 1000)
	_, _ = s.Write([]byte("all of it"))
	s.Close()
	<-s.Flushed()
	s.Abandon()
	if got := s.Dropped(); got != 0 || w.String() != "all of it" {
		t.Errorf("dropped %d, wrote %q; want 0 and everything", got, w.String())
	}
}
