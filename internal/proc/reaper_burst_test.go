package proc

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestReaperNeverLosesTheChildStatusWhenOrphansAndBackendCommandsExitTogether(t *testing.T) {
	// Each round starts the supervised child (under a pty, as in
	// production), a batch of commands the way the exec sync backend
	// starts them (Reaper.Start, output on a pipe), and leaves orphans
	// behind from all of them. Creating the gate file lets every one of
	// them exit within a few milliseconds, so the reaper collects the
	// child's status in the middle of a burst of other exits.
	const rounds, commands = 10, 6
	orphansBefore := testReaper.Orphans()

	for round := range rounds {
		gate := filepath.Join(t.TempDir(), "gate")
		child, _ := start(t, Config{
			Argv: []string{"./testdata/burst.sh", "7", gate},
			PTY:  true,
		})

		var wg sync.WaitGroup
		for i := range commands {
			want := 20 + i
			pid, done, out := startBackendCommand(t, want, gate)
			wg.Go(func() {
				// The backend reads the output to the end, then takes the status.
				_, _ = io.Copy(io.Discard, out)
				_ = out.Close()
				select {
				case st := <-done:
					if st.Pid != pid || st.ExitCode() != want {
						t.Errorf("round %d: command %d got %v, want exit code %d",
							round, pid, st, want)
					}
				case <-time.After(testTimeout):
					t.Errorf("round %d: status of command %d lost", round, pid)
				}
			})
		}

		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if code := wait(t, child).ExitCode(); code != 7 {
			t.Errorf("round %d: child exit code = %d, want 7", round, code)
		}
		wg.Wait()
	}

	waitNoZombies(t)
	// Every burst.sh leaves 10 orphans.
	if got, want := testReaper.Orphans()-orphansBefore, uint64(rounds*(commands+1)*10); got < want {
		t.Errorf("reaped %d orphans, want at least %d", got, want)
	}
}

// startBackendCommand starts burst.sh the way the exec backend starts its
// commands and returns its pid, status channel and the read end of its
// output.
func startBackendCommand(t *testing.T, code int, gate string) (int, <-chan Status, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pid, done, err := testReaper.Start(Command{
		Argv:   []string{"./testdata/burst.sh", strconv.Itoa(code), gate},
		Stdout: w,
		Stderr: w,
	})
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		t.Fatalf("Start: %v", err)
	}
	return pid, done, r
}
