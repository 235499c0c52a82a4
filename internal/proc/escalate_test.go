package proc

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestChildSecondTerminatingSignalDuringGraceKillsAtOnce(t *testing.T) {
	// The grace is far longer than the test may take: only the second
	// signal can end the child in time.
	const grace = time.Hour
	for _, second := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signalName(second), func(t *testing.T) {
			modes(t, func(t *testing.T, usePTY bool) {
				signals := make(chan os.Signal, 2)
				c, out := start(t, Config{
					Argv:    []string{"./testdata/ignore-term.sh"},
					PTY:     usePTY,
					Grace:   grace,
					Signals: signals,
				})
				out.waitFor(t, "ready")

				signals <- syscall.SIGTERM
				signals <- second
				if code := wait(t, c).ExitCode(); code != 137 {
					t.Errorf("exit code = %d, want 137 (SIGKILL on the second signal)", code)
				}
			})
		})
	}
}

func TestChildSecondNonTerminatingSignalDuringGraceIsOnlyForwarded(t *testing.T) {
	signals := make(chan os.Signal, 2)
	c, out := start(t, Config{
		Argv: []string{"sh", "-c", `trap '' TERM; trap 'echo got USR1' USR1; echo ready; ` +
			`while :; do sleep 0.05; done`},
		PTY:     true,
		Grace:   2 * time.Second,
		Signals: signals,
	})
	out.waitFor(t, "ready")

	signals <- syscall.SIGTERM
	signals <- syscall.SIGUSR1
	out.waitFor(t, "got USR1")
	// Still running after USR1: only the grace ends it.
	if snap := c.Snapshot(); snap.State != StateRunning {
		t.Errorf("state after SIGUSR1 = %s, want running until the grace is over", snap.State)
	}
	if code := wait(t, c).ExitCode(); code != 137 {
		t.Errorf("exit code = %d, want 137 when the grace ran out", code)
	}
}
