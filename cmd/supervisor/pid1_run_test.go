package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requirePIDNamespace skips a test that needs root and unshare(1) where
// they are missing, and fails it in CI, which must run it.
func requirePIDNamespace(t *testing.T) string {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run this test: unshare %v, euid %d", err, os.Geteuid())
		}
		t.Skip("needs root and unshare (util-linux)")
	}
	return unshare
}

// startAsPID1 runs `supervisor run ARGS` as PID 1 of a fresh PID namespace
// with its own /proc, in a fresh workspace that is also the child's
// working directory.
func startAsPID1(t *testing.T, args ...string) (*supervised, string) {
	t.Helper()
	unshare := requirePIDNamespace(t)
	ws := t.TempDir()
	full := append([]string{"--pid", "--fork", "--mount-proc", supervisorBin, "run",
		"--workspace", ws, "--sync", "dir:" + filepath.Join(t.TempDir(), "mirror"),
		"--listen", ""}, args...)
	return startSupervisorCommand(t, ws, quickExit, unshare, full...), ws
}

// quickExit spares each run of a race-enabled supervisor the race
// runtime's default second of sleep at exit, which would dominate the
// tests that run it hundreds of times.
var quickExit = []string{"GORACE=atexit_sleep_ms=0"}

// supervisorPid returns the host pid of the supervisor that unshare forked.
func (s *supervised) supervisorPid(t *testing.T) int {
	t.Helper()
	unsharePid := s.cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unsharePid, unsharePid))
		if fields := strings.Fields(string(data)); len(fields) > 0 {
			pid, err := strconv.Atoi(fields[0])
			if err == nil {
				return pid
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("unshare never forked the supervisor")
	return 0
}

// waitForFile waits until the child has created path.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the child never created %s", path)
}

func TestPID1ChildStatusSurvivesFiftyOrphansIn200Runs(t *testing.T) {
	requirePIDNamespace(t)
	script, err := filepath.Abs("testdata/orphan-burst.sh")
	if err != nil {
		t.Fatal(err)
	}
	const runs, parallel, orphans = 200, 4, 50

	var mu sync.Mutex
	failures := map[string]int{}
	fail := func(what string) {
		mu.Lock()
		failures[what]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range parallel {
		wg.Go(func() {
			for range next {
				sup, _ := startAsPID1(t, "--log-level", "debug", "--", script,
					strconv.Itoa(orphans), "7")
				if code := sup.wait(t, 60*time.Second); code != 7 {
					fail(fmt.Sprintf("exit status %d instead of 7", code))
				}
				// Each orphan had exited before the child did; the reaper
				// logs every one it collects, so 50 lines mean no zombie.
				if n := strings.Count(sup.stderr.String(), "reaped orphan"); n != orphans {
					fail(fmt.Sprintf("%d orphans reaped instead of %d", n, orphans))
				}
			}
		})
	}
	for i := range runs {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("failed runs out of %d: %v", runs, failures)
	}
}

func TestPID1ForwardsSIGTERMToAGrandchild(t *testing.T) {
	// The child waits for a grandchild that traps SIGTERM; the child
	// itself would die of it, so it traps it to wait for the grandchild.
	child := `sh -c 'trap "echo grandchild got TERM; exit 0" TERM; : >ready; ` +
		`while :; do sleep 0.05; done' &
trap 'wait; exit 0' TERM
wait`
	for _, pty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			args := []string{"--grace", "20s"}
			if !pty {
				args = append(args, "--no-pty")
			}
			sup, ws := startAsPID1(t, append(args, "--", "sh", "-c", child)...)
			waitForFile(t, filepath.Join(ws, "ready"))

			if err := syscall.Kill(sup.supervisorPid(t), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := sup.wait(t, 15*time.Second); code != 0 {
				t.Errorf("exit status %d, want 0 from the child's trap", code)
			}
			if out := sup.stdout.String(); !strings.Contains(out, "grandchild got TERM") {
				t.Errorf("stdout %q lacks the grandchild's trap line", out)
			}
		})
	}
}

func TestPID1KillsAChildIgnoringSIGTERMWhenGraceRunsOut(t *testing.T) {
	for _, pty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			args := []string{"--grace", "300ms"}
			if !pty {
				args = append(args, "--no-pty")
			}
			sup, ws := startAsPID1(t, append(args, "--", "sh", "-c",
				`trap '' TERM; : >ready; while :; do sleep 0.05; done`)...)
			waitForFile(t, filepath.Join(ws, "ready"))

			if err := syscall.Kill(sup.supervisorPid(t), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := sup.wait(t, 15*time.Second); code != 137 {
				t.Errorf("exit status %d, want 137 (SIGKILL at --grace)", code)
			}
			if !strings.Contains(sup.stderr.String(), "grace period over") {
				t.Error("stderr does not say the grace period ran out")
			}
		})
	}
}

func TestPID1ExitStatusFollowsDesign(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		argv []string
		want int
	}{
		{"child's exit code", []string{"sh", "-c", "exit 3"}, 3},
		{"child died of SIGTERM: 128+15", []string{"sh", "-c", "kill -TERM $$"}, 143},
		{"child died of SIGKILL: 128+9", []string{"sh", "-c", "kill -KILL $$"}, 137},
		{"command not found", []string{"no-such-command-here"}, 127},
		{"command not executable", []string{notExecutable}, 126},
	}
	for _, pty := range []bool{true, false} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/pty=%v", tc.name, pty), func(t *testing.T) {
				var args []string
				if !pty {
					args = append(args, "--no-pty")
				}
				sup, _ := startAsPID1(t, append(append(args, "--"), tc.argv...)...)
				if code := sup.wait(t, 30*time.Second); code != tc.want {
					t.Errorf("exit status %d, want %d", code, tc.want)
				}
			})
		}
	}
}

func TestPID1SecondSignalDuringGraceKillsAtOnce(t *testing.T) {
	// The grace is far longer than the test waits: only the second signal
	// can end the child in time.
	for _, second := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(second.String(), func(t *testing.T) {
			sup, ws := startAsPID1(t, "--grace", "1h", "--", "sh", "-c",
				`trap '' TERM INT; : >ready; while :; do sleep 0.05; done`)
			waitForFile(t, filepath.Join(ws, "ready"))
			pid := sup.supervisorPid(t)

			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, sup, "stopping child")
			if err := syscall.Kill(pid, second); err != nil {
				t.Fatal(err)
			}
			if code := sup.wait(t, 20*time.Second); code != 137 {
				t.Errorf("exit status %d, want 137 (SIGKILL on the second signal)", code)
			}
		})
	}
}

func TestPID1StopTakesAtMostGracePlusFlush(t *testing.T) {
	// The child writes a file and then ignores SIGTERM; the backend takes
	// a minute per operation. After SIGTERM the child has --grace, the
	// final flush --flush-timeout, and the supervisor must be gone soon
	// after both, not when the backend is done.
	const grace, flush = 500 * time.Millisecond, time.Second
	unshare := requirePIDNamespace(t)
	backend, err := filepath.Abs("testdata/slow-backend.sh")
	if err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	sup := startSupervisorCommand(t, ws, quickExit, unshare, "--pid", "--fork", "--mount-proc",
		supervisorBin, "run", "--workspace", ws, "--listen", "",
		"--sync", "exec:"+backend+" {path}", "--grace", grace.String(), "--flush-timeout", flush.String(),
		"--", "sh", "-c", `echo data >file.txt; trap '' TERM; : >ready; while :; do sleep 0.05; done`)
	waitForFile(t, filepath.Join(ws, "ready"))
	pid := sup.supervisorPid(t)

	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := sup.wait(t, 30*time.Second)
	took := time.Since(start)
	if code != 137 {
		t.Errorf("exit status %d, want 137 (killed at --grace)", code)
	}
	// Generous slack for a loaded machine; the backend alone would take 60s.
	if limit := grace + flush + 5*time.Second; took > limit {
		t.Errorf("stop took %s, want at most grace + flush (+ slack) = %s", took, limit)
	}
	if !strings.Contains(sup.stderr.String(), "unsynced") {
		t.Error("stderr does not list the change the flush could not sync")
	}
}

// waitForLog waits until the supervisor's stderr contains s.
func waitForLog(t *testing.T, sup *supervised, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(sup.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr never contained %q", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPID1GrandchildHoldingTheOutputDoesNotKeepTheSupervisorAlive(t *testing.T) {
	// The grandchild ignores the SIGHUP a pty sends when its session
	// leader exits and keeps the output open for a minute.
	for _, pty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			args := []string{"--drain-timeout", "300ms"}
			if !pty {
				args = append(args, "--no-pty")
			}
			sup, _ := startAsPID1(t, append(args, "--", "sh", "-c",
				`trap '' HUP; sleep 60 & echo hi; exit 3`)...)
			// 60s is what the grandchild would hold the output for.
			if code := sup.wait(t, 20*time.Second); code != 3 {
				t.Errorf("exit status %d, want the child's 3", code)
			}
			if out := sup.stdout.String(); out != "hi\n" {
				t.Errorf("stdout = %q, want %q", out, "hi\n")
			}
		})
	}
}
