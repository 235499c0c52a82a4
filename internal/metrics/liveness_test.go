package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthzNamesEveryLoopThatEndedOnItsOwn(t *testing.T) {
	l := NewLiveness()
	srv := httptest.NewServer((&Server{Metrics: New(), Readiness: NewReadiness(),
		Liveness: l}).Handler())
	defer srv.Close()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	running := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- l.Track(ctx, "queue", func() error {
			close(running)
			<-release
			return errors.New("manifest closed")
		})
	}()
	<-running
	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("with the loop running: %d %q, want 200 ok", code, body)
	}

	close(release)
	if err := <-done; err == nil || err.Error() != "manifest closed" {
		t.Errorf("Track returned %v, want the loop's error", err)
	}
	_ = l.Track(ctx, "watcher", func() error { return nil })
	code, body := get(t, srv.URL+"/healthz")
	want := "dead: queue: stopped: manifest closed; watcher: stopped\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Errorf("with two loops dead: %d %q, want 503 %q", code, body, want)
	}

	// A loop that runs again is alive again.
	_ = l.Track(ctx, "watcher", func() error { stop(); return nil })
	_ = l.Track(ctx, "queue", func() error { return nil })
	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("after the loops ran again and were stopped: %d %q, want 200", code, body)
	}
}

func TestLoopsStoppedOnPurposeAreNotDead(t *testing.T) {
	l := NewLiveness()
	ctx, stop := context.WithCancel(context.Background())
	stop()
	_ = l.Track(ctx, "queue", func() error { return context.Canceled })
	if alive, reason := l.Alive(); !alive {
		t.Errorf("Alive = false (%s) after a stopped loop, want true", reason)
	}
}

func TestNilLivenessRunsTheLoop(t *testing.T) {
	var l *Liveness
	ran := false
	if err := l.Track(context.Background(), "x", func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Track on nil: ran=%v err=%v", ran, err)
	}
}
