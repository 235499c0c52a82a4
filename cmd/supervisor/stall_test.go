package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStalledStdoutDoesNotHoldTheSupervisorAfterTheChildExits runs a child
// that writes far more than the supervisor holds to a stdout that is a FIFO
// nobody reads. The child is slowed, as it would be without a supervisor;
// on SIGTERM it exits, and --drain-timeout later the supervisor gives up on
// stdout, says how much it dropped, runs the final scan and flush and exits
// with the child's status.
func TestStalledStdoutDoesNotHoldTheSupervisorAfterTheChildExits(t *testing.T) {
	for _, mode := range []string{"pty", "pipes"} {
		t.Run(mode, func(t *testing.T) {
			ws, mirror := t.TempDir(), t.TempDir()
			fifo := filepath.Join(t.TempDir(), "stdout")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// Opened for reading and writing, so that the open does not wait
			// for a reader; the test never reads it.
			stdout, err := os.OpenFile(fifo, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = stdout.Close() })

			args := []string{"run", "--sync", "dir:" + mirror, "--listen", "",
				"--drain-timeout", "500ms", "--grace", "20s"}
			if mode == "pipes" {
				args = append(args, "--no-pty")
			}
			script := `echo early > early.txt; trap 'echo late > late.txt; exit 3' TERM; ` +
				`head -c 30000000 /dev/zero & wait`
			sup := startSupervisorWithStdout(t, ws, stdout,
				append(args, "--", "sh", "-c", script)...)

			// The child's first file reaches the mirror while its output is
			// stalled: the watcher and queue do not wait on stdout.
			waitFor(t, func() bool {
				_, err := os.Stat(filepath.Join(mirror, "early.txt"))
				return err == nil
			})
			if err := sup.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := sup.wait(t, 15*time.Second); code != 3 {
				t.Errorf("exit status %d, want the child's 3", code)
			}
			if got, err := os.ReadFile(filepath.Join(mirror, "late.txt")); string(got) != "late\n" {
				t.Errorf("mirror late.txt = %q, %v; want the file written at exit", got, err)
			}
			if !strings.Contains(sup.stderr.String(), "dropped_bytes=") {
				t.Errorf("stderr does not say how many bytes were dropped:\n%s",
					sup.stderr.String())
			}
		})
	}
}

// startSupervisorWithStdout is startSupervisor with stdout as the
// supervisor's own standard output.
func startSupervisorWithStdout(t *testing.T, dir string, stdout *os.File,
	args ...string) *supervised {
	t.Helper()
	return startProcess(t, dir, nil, stdout, supervisorBin, args...)
}
