package control

import (
	"syscall"
	"testing"
	"time"
)

// slowStarter takes its time to set a run up, as serve does while it opens
// the workspace, the backend and the manifest.
type slowStarter struct {
	release chan struct{}
	runs    chan *Run
}

func (s *slowStarter) Start(_ StartRequest, run *Run) error {
	<-s.release
	run.Started()
	s.runs <- run
	return nil
}

// The ID that Ping reports as busy names a run a client can look up and
// stop at once, even while the daemon is still setting it up.
func TestRunBeingSetUpCanBeLookedUpAndStoppedByTheIDPingReports(t *testing.T) {
	d := startDaemon(t)
	starter := &slowStarter{release: make(chan struct{}), runs: make(chan *Run, 1)}
	d.server.Starter = starter
	c := NewUnixClient(d.socket)
	started := make(chan error, 1)
	go func() {
		_, err := c.Start(ctx(t), StartRequest{Argv: []string{"agent"}})
		started <- err
	}()

	var id string
	for deadline := time.Now().Add(5 * time.Second); id == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Ping never reported the run being set up")
		}
		if p, err := c.Ping(ctx(t)); err == nil {
			id = p.Busy
		}
	}
	if _, err := c.Run(ctx(t), id); err != nil {
		t.Errorf("Run(%s) while it is set up: %v", id, err)
	}
	if err := c.Stop(ctx(t), id); err != nil {
		t.Errorf("Stop(%s) while it is set up: %v", id, err)
	}

	close(starter.release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	run := <-starter.runs
	select {
	case sig := <-run.Signals():
		if sig != syscall.SIGTERM {
			t.Errorf("run got %v, want the SIGTERM of the early stop", sig)
		}
	case <-time.After(5 * time.Second):
		t.Error("the early stop never reached the run")
	}
	run.Finish(143, nil)
}
