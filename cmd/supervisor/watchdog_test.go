package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunWatchdogsEndAHangingAgentWithTheDocumentedStatus(t *testing.T) {
	agent, err := filepath.Abs("testdata/hanging-agent.sh")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		flags []string
		argv  []string
		want  int
		log   string
	}{
		{"silent before its result: idle timeout",
			[]string{"--idle-timeout", "300ms"},
			[]string{"before"}, exitIdle, "printed nothing for the idle timeout"},
		{"silent and ignoring SIGTERM: idle timeout, killed at --grace",
			[]string{"--idle-timeout", "300ms", "--grace", "200ms"},
			[]string{"before", "", "ignore-term"}, exitIdle, "grace period over"},
		{"hangs after a successful result",
			[]string{"--exit-after-result", "300ms", "--idle-timeout", "1h"},
			[]string{"after", "success"}, 0, "still running after its result line"},
		{"hangs after an error result",
			[]string{"--exit-after-result", "300ms"},
			[]string{"after", "error"}, exitResultError, "still running after its result line"},
		{"hangs after a result, ignoring SIGTERM",
			[]string{"--exit-after-result", "300ms", "--grace", "200ms"},
			[]string{"after", "success", "ignore-term"}, 0, "grace period over"},
	}
	for _, pty := range []bool{true, false} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/pty=%v", tc.name, pty), func(t *testing.T) {
				args := []string{"run", "--sync", "dir:" + filepath.Join(t.TempDir(), "m"),
					"--listen", ""}
				if !pty {
					args = append(args, "--no-pty")
				}
				args = append(append(args, tc.flags...), "--", agent)
				sup := startSupervisor(t, t.TempDir(), nil, append(args, tc.argv...)...)
				if got := sup.wait(t, 30*time.Second); got != tc.want {
					t.Errorf("exit status %d, want %d", got, tc.want)
				}
				if !strings.Contains(sup.stderr.String(), tc.log) {
					t.Errorf("stderr lacks %q", tc.log)
				}
			})
		}
	}
}

func TestRunWatchdogsLeaveAnAgentThatExitsAlone(t *testing.T) {
	// The agent prints its result and exits 5 on its own, well within both
	// timeouts: its own status comes out.
	script := `echo '{"type":"result","subtype":"success","is_error":false}'; exit 5`
	sup := startSupervisor(t, t.TempDir(), nil, "run",
		"--sync", "dir:"+filepath.Join(t.TempDir(), "m"), "--listen", "",
		"--idle-timeout", "1m", "--exit-after-result", "1m", "--", "sh", "-c", script)
	if got := sup.wait(t, 30*time.Second); got != 5 {
		t.Errorf("exit status %d, want the agent's own 5", got)
	}
}

func TestRunRejectsNegativeWatchdogTimeouts(t *testing.T) {
	for _, flag := range []string{"--idle-timeout", "--exit-after-result"} {
		sup := startSupervisor(t, t.TempDir(), nil, "run",
			"--sync", "dir:"+filepath.Join(t.TempDir(), "m"), flag, "-1s", "--", "true")
		if got := sup.wait(t, 10*time.Second); got != exitUsage {
			t.Errorf("%s -1s: exit status %d, want %d", flag, got, exitUsage)
		}
	}
}
