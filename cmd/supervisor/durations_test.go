package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Zero durations mean what they say or are refused; none of them quietly
// becomes a default.

func TestZeroGraceKillsTheChildRightAfterTheSignal(t *testing.T) {
	ws, mirror := t.TempDir(), t.TempDir()
	ready := filepath.Join(t.TempDir(), "ready")
	// The child ignores SIGTERM, so only the SIGKILL ends it: at once with
	// --grace 0, after 10 s with the default grace.
	sup := startSupervisor(t, ws, nil, "run", "--sync", "dir:"+mirror, "--listen", "",
		"--no-pty", "--grace", "0", "--",
		"sh", "-c", `trap "" TERM; : > "$1"; exec sleep 600`, "sh", ready)
	waitFor(t, func() bool { _, err := os.Stat(ready); return err == nil })
	if err := sup.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := sup.wait(t, 5*time.Second); code != 137 {
		t.Errorf("exit status %d, want 137 (SIGKILL without a grace period)", code)
	}
	if !strings.Contains(sup.stderr.String(), "grace_ms=0") {
		t.Errorf("stderr does not log grace_ms=0:\n%s", sup.stderr.String())
	}
}

func TestZeroFlushTimeoutExitsWithoutTheFinalFlush(t *testing.T) {
	gate := make(chan struct{})
	stuck := startSyncServer(t, "127.0.0.1:0", 0, gate)
	t.Cleanup(func() { close(gate) })
	sup := startSupervisor(t, t.TempDir(), nil, "run", "--sync", stuck.url(), "--listen", "",
		"--no-pty", "--flush-timeout", "0", "--sync-timeout", "60s", "--",
		"sh", "-c", "echo a > a.txt; exit 3")
	// The backend holds every request for good: only a flush that does not
	// wait lets the supervisor out before the 60 s request timeout.
	if code := sup.wait(t, 20*time.Second); code != 3 {
		t.Errorf("exit status %d, want the child's 3", code)
	}
	if !strings.Contains(sup.stderr.String(), "unsynced: path=a.txt") {
		t.Errorf("stderr does not list a.txt as unsynced:\n%s", sup.stderr.String())
	}
}

func TestZeroDurationsThatCannotWorkAreUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"drain timeout", []string{"--drain-timeout", "0"}, "--drain-timeout must be positive"},
		{"max delay under the default debounce", []string{"--max-delay", "0"},
			"--max-delay (0s) must not be shorter than --debounce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--sync", "dir:" + t.TempDir(), "--listen", ""},
				tt.args...)
			sup := startSupervisor(t, t.TempDir(), nil, append(args, "--", "true")...)
			if code := sup.wait(t, 20*time.Second); code != 2 {
				t.Errorf("exit status %d, want 2 (usage)", code)
			}
			if !strings.Contains(sup.stderr.String(), tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, sup.stderr.String())
			}
		})
	}
}

func TestZeroMaxDelayWithZeroDebounceSyncsAtOnce(t *testing.T) {
	ws, mirror := t.TempDir(), t.TempDir()
	sup := startSupervisor(t, ws, nil, "run", "--sync", "dir:"+mirror, "--listen", "",
		"--no-pty", "--debounce", "0", "--max-delay", "0", "--",
		"sh", "-c", "echo a > a.txt")
	if code := sup.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	if got, err := os.ReadFile(filepath.Join(mirror, "a.txt")); err != nil || string(got) != "a\n" {
		t.Errorf("mirror a.txt = %q, %v; want a", got, err)
	}
}
