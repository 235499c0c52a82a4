package proc

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/agent-supervisor/supervisor/internal/metrics"
)

func TestChildReportsExitStatusLikeAShell(t *testing.T) {
	cases := []struct {
		name     string
		argv     []string
		wantCode int
	}{
		{"exit code", []string{"sh", "-c", "exit 3"}, 3},
		{"success", []string{"true"}, 0},
		{"killed by SIGKILL is 128+9", []string{"sh", "-c", "kill -KILL $$"}, 137},
		{"killed by SIGTERM is 128+15", []string{"sh", "-c", "kill -TERM $$"}, 143},
	}
	modes(t, func(t *testing.T, usePTY bool) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, _ := start(t, Config{Argv: tc.argv, PTY: usePTY})
				if got := wait(t, c).ExitCode(); got != tc.wantCode {
					t.Errorf("exit code = %d, want %d", got, tc.wantCode)
				}
			})
		}
	})
}

func TestChildThatCannotStartReportsShellExitCode(t *testing.T) {
	cases := []struct {
		name     string
		argv0    string
		wantCode int
		wantErr  error
		wantMsg  string
	}{
		{"missing command", "no-such-command-xyz", 127, ErrNotFound,
			"command not found: no-such-command-xyz"},
		{"missing path", "./testdata/no-such-file", 127, ErrNotFound,
			"command not found: ./testdata/no-such-file"},
		{"file without execute permission", "./testdata/not-executable.sh", 126,
			syscall.EACCES, "cannot execute ./testdata/not-executable.sh: permission denied"},
		{"directory", "./testdata", 126, syscall.EISDIR,
			"cannot execute ./testdata: is a directory"},
		{"executable of unknown format", "./testdata/no-interpreter-line", 126,
			syscall.ENOEXEC, "cannot execute ./testdata/no-interpreter-line: exec format error"},
	}
	modes(t, func(t *testing.T, usePTY bool) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := New(Config{Argv: []string{tc.argv0}, PTY: usePTY, Reaper: testReaper})
				err := c.Start(context.Background())

				var startErr *StartError
				if !errors.As(err, &startErr) {
					t.Fatalf("Start error = %v, want a *StartError", err)
				}
				if startErr.Code != tc.wantCode {
					t.Errorf("StartError.Code = %d, want %d", startErr.Code, tc.wantCode)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Start error %v does not match %v", err, tc.wantErr)
				}
				if err.Error() != tc.wantMsg {
					t.Errorf("message = %q, want %q", err.Error(), tc.wantMsg)
				}

				st, waitErr := c.Wait()
				if st.ExitCode() != tc.wantCode || !errors.Is(waitErr, err) {
					t.Errorf("Wait = %v, %v; want exit code %d and the Start error",
						st, waitErr, tc.wantCode)
				}
				if snap := c.Snapshot(); snap.State != StateExited ||
					snap.ExitCode == nil || *snap.ExitCode != tc.wantCode {
					t.Errorf("Snapshot = %+v, want exited with %d", snap, tc.wantCode)
				}
			})
		}
	})
}

func TestChildOutputArrivesCompleteWhenChildExitsAtOnce(t *testing.T) {
	// 300 KB of random bytes, newlines and all: more than a pty buffer holds,
	// so the child is still writing while the reader runs, then exits at once.
	data := make([]byte, 300<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	modes(t, func(t *testing.T, usePTY bool) {
		for range 30 {
			c, out := start(t, Config{Argv: []string{"cat", file}, PTY: usePTY})
			if code := wait(t, c).ExitCode(); code != 0 {
				t.Fatalf("cat exited with %d", code)
			}
			if got := out.String(); got != string(data) {
				t.Fatalf("output: got %d bytes, want the %d bytes written (equal prefix: %d)",
					len(got), len(data), commonPrefix([]byte(got), data))
			}
		}
	})
}

func TestChildUnderPTYWithoutTerminalGetsBytesUnchanged(t *testing.T) {
	c, out := start(t, Config{
		Argv: []string{"printf", `line\nother\r\nend`},
		PTY:  true,
	})
	wait(t, c)
	if got, want := out.String(), "line\nother\r\nend"; got != want {
		t.Errorf("output = %q, want %q (no LF -> CRLF)", got, want)
	}
}

func TestChildStdinReadsEndOfFileWhenSupervisorStdinIsNoTerminal(t *testing.T) {
	// A regular file is not a terminal: its content must not reach the child.
	stdin, err := os.Open("testdata/trap.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()

	for _, in := range []*os.File{nil, stdin} {
		modes(t, func(t *testing.T, usePTY bool) {
			c, out := start(t, Config{Argv: []string{"cat"}, PTY: usePTY, Stdin: in})
			if code := wait(t, c).ExitCode(); code != 0 {
				t.Errorf("cat exited with %d", code)
			}
			if got := out.String(); got != "" {
				t.Errorf("cat read %q, want end of file at once", got)
			}
		})
	}
}

func TestChildSignalReachesTheChild(t *testing.T) {
	modes(t, func(t *testing.T, usePTY bool) {
		c, out := start(t, Config{Argv: []string{"./testdata/trap.sh", "TERM"}, PTY: usePTY})
		out.waitFor(t, "ready")

		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("Signal: %v", err)
		}
		if code := wait(t, c).ExitCode(); code != 0 {
			t.Errorf("exit code = %d, want 0 from the trap", code)
		}
		if !strings.Contains(out.String(), "got TERM") {
			t.Errorf("output %q lacks the trap's line", out.String())
		}
		if err := c.Signal(syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Signal after exit = %v, want ErrNotRunning", err)
		}
	})
}

func TestChildForwardsEachSupervisorSignalToTheProcessGroup(t *testing.T) {
	for _, sig := range ForwardedSignals {
		name := strings.TrimPrefix(signalName(sig.(syscall.Signal)), "SIG")
		t.Run(name, func(t *testing.T) {
			signals := make(chan os.Signal, 1)
			c, out := start(t, Config{
				Argv:    []string{"./testdata/trap.sh", name},
				PTY:     true,
				Signals: signals,
			})
			out.waitFor(t, "ready")

			signals <- sig
			if code := wait(t, c).ExitCode(); code != 0 {
				t.Errorf("exit code = %d, want 0 from the trap", code)
			}
			if !strings.Contains(out.String(), "got "+name) {
				t.Errorf("output %q lacks the trap's line", out.String())
			}
		})
	}
}

func TestChildSignalsReceivedBeforeStartAreForwardedAfterIt(t *testing.T) {
	signals := make(chan os.Signal, 1)
	signals <- syscall.SIGTERM
	c, _ := start(t, Config{Argv: []string{"sleep", "30"}, PTY: true, Signals: signals})
	if code := wait(t, c).ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code = %d, want %d", code, 128+int(syscall.SIGTERM))
	}
}

func TestChildIgnoringSIGTERMIsKilledWhenGraceRunsOut(t *testing.T) {
	modes(t, func(t *testing.T, usePTY bool) {
		c, out := start(t, Config{
			Argv:  []string{"./testdata/ignore-term.sh"},
			PTY:   usePTY,
			Grace: 200 * time.Millisecond,
		})
		out.waitFor(t, "ready")

		if err := c.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if code := wait(t, c).ExitCode(); code != 137 {
			t.Errorf("exit code = %d, want 137 (SIGKILL)", code)
		}
		if snap := c.Snapshot(); snap.Signal != "SIGKILL" {
			t.Errorf("Snapshot.Signal = %q, want SIGKILL", snap.Signal)
		}
	})
}

func TestChildStopsWhenContextIsDone(t *testing.T) {
	out := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	c := New(Config{
		Argv:   []string{"./testdata/trap.sh", "TERM"},
		PTY:    true,
		Output: out,
		Reaper: testReaper,
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "ready")

	cancel()
	if code := wait(t, c).ExitCode(); code != 0 {
		t.Errorf("exit code = %d, want 0 from the SIGTERM trap", code)
	}
	if !strings.Contains(out.String(), "got TERM") {
		t.Errorf("output %q lacks the trap's line", out.String())
	}
}

func TestChildGrandchildHoldingOutputDoesNotHoldWaitPastDrainTimeout(t *testing.T) {
	const drain = 300 * time.Millisecond
	cases := []struct {
		name   string
		script string
		// mustTimeOut is set when the grandchild surely outlives the child
		// with the output open. A plain background sleep under a pty may
		// instead die of the SIGHUP the kernel sends to the terminal's
		// foreground group when the session leader exits.
		mustTimeOut bool
	}{
		{"background sleep", `sleep 30 & echo hi`, false},
		{"background sleep ignoring SIGHUP", `trap '' HUP; sleep 30 & echo hi`, true},
	}
	modes(t, func(t *testing.T, usePTY bool) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, out := start(t, Config{
					Argv:         []string{"sh", "-c", tc.script},
					PTY:          usePTY,
					DrainTimeout: drain,
				})
				t.Cleanup(func() { _ = unix.Kill(-c.Snapshot().Pid, syscall.SIGKILL) })

				waited := make(chan error, 1)
				go func() {
					_, err := c.Wait()
					waited <- err
				}()
				// Generous: the point is that Wait returns while sleep 30 runs.
				select {
				case err := <-waited:
					if err != nil && !errors.Is(err, ErrDrainTimeout) {
						t.Errorf("Wait error = %v, want nil or ErrDrainTimeout", err)
					}
					if tc.mustTimeOut && !errors.Is(err, ErrDrainTimeout) {
						t.Errorf("Wait error = %v, want ErrDrainTimeout", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Wait still blocked while the grandchild holds the output")
				}
				if got := out.String(); got != "hi\n" {
					t.Errorf("output = %q, want %q", got, "hi\n")
				}
			})
		}
	})
}

func TestChildUpdatesMetricsAndSnapshot(t *testing.T) {
	m := metrics.New()
	c, out := start(t, Config{
		Argv:    []string{"./testdata/trap.sh", "TERM"},
		PTY:     true,
		Metrics: m,
	})
	out.waitFor(t, "ready")

	snap := c.Snapshot()
	if snap.State != StateRunning || snap.Pid <= 0 || snap.StartedAt.IsZero() ||
		snap.ExitCode != nil || !snap.PTY {
		t.Errorf("running Snapshot = %+v", snap)
	}
	if got := testutil.ToFloat64(m.ChildRunning); got != 1 {
		t.Errorf("child_running = %v while running, want 1", got)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	wait(t, c)

	snap = c.Snapshot()
	if snap.State != StateExited || snap.ExitCode == nil || *snap.ExitCode != 0 ||
		snap.ExitedAt.Before(snap.StartedAt) {
		t.Errorf("exited Snapshot = %+v", snap)
	}
	for name, tc := range map[string]struct{ got, want float64 }{
		"child_running":            {testutil.ToFloat64(m.ChildRunning), 0},
		"child_exit_code":          {testutil.ToFloat64(m.ChildExitCode), 0},
		"child_starts_total":       {testutil.ToFloat64(m.ChildStarts), 1},
		"child_output_bytes_total": {testutil.ToFloat64(m.ChildOutputBytes), float64(len(out.String()))},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
}

func TestChildBeforeStartIsStarting(t *testing.T) {
	c := New(Config{Argv: []string{"true"}, Reaper: testReaper})
	if snap := c.Snapshot(); snap.State != StateStarting || snap.Pid != 0 {
		t.Errorf("Snapshot = %+v, want starting without pid", snap)
	}
	if err := c.Signal(syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Signal before Start = %v, want ErrNotRunning", err)
	}
	if _, err := c.Wait(); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Wait before Start = %v, want ErrNotStarted", err)
	}
}

func TestChildOutputWriteFailureDoesNotStallTheChild(t *testing.T) {
	broken := errors.New("consumer went away")
	c, _ := start(t, Config{
		Argv:   []string{"head", "-c", "1000000", "/dev/zero"},
		PTY:    true,
		Output: failingWriter{broken},
	})
	st, err := c.Wait()
	if st.ExitCode() != 0 {
		t.Errorf("exit code = %d, want 0: the child must run to completion", st.ExitCode())
	}
	if !errors.Is(err, broken) {
		t.Errorf("Wait error = %v, want the Output error", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
