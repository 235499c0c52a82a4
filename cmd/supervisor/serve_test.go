package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/control"
)

// daemonUnderTest is a `supervisor serve` process and a client for it.
type daemonUnderTest struct {
	*supervised
	socket string
	client *control.Client
}

// startServe starts `supervisor serve` in dir with a socket of its own and
// waits until its control API answers.
func startServe(t *testing.T, dir string, env []string, args ...string) *daemonUnderTest {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "control.sock")
	args = append([]string{"serve", "--socket", socket, "--listen", "127.0.0.1:0"}, args...)
	d := &daemonUnderTest{supervised: startSupervisor(t, dir, env, args...), socket: socket,
		client: control.NewUnixClient(socket)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.client.Ping(ctx)
		cancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never answered on its socket: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// submitted is one `supervisor submit` process.
type submitted struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func startSubmit(t *testing.T, d *daemonUnderTest, dir string, env []string,
	args ...string) *submitted {
	t.Helper()
	s := &submitted{}
	s.cmd = exec.Command(supervisorBin, append([]string{"submit", "--socket", d.socket}, args...)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(cleanEnv(), env...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
	return s
}

// wait returns submit's exit status as a shell would report it.
func (s *submitted) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("submit still running after 2m")
	}
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return s.cmd.ProcessState.ExitCode()
}

func (s *submitted) run(t *testing.T) int {
	t.Helper()
	return s.wait(t)
}

// waitForRun polls the daemon until the run named in ping is busy (or
// not), returning its id.
func (d *daemonUnderTest) busyRun(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		p, err := d.client.Ping(t.Context())
		if err == nil && p.Busy != "" {
			return p.Busy
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no run became busy")
	return ""
}

// runEnds waits for a run to end and returns its exit code.
func (d *daemonUnderTest) runEnds(t *testing.T, id string) int {
	t.Helper()
	code := -1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.client.Events(ctx, id, 0, func(e control.Event) error {
		if e.Type == control.EventExit {
			info, _ := d.client.Run(ctx, id)
			if info.ExitCode != nil {
				code = *info.ExitCode
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("stream of run %s: %v", id, err)
	}
	return code
}

func serveFixture(t *testing.T) (ws string, env []string) {
	t.Helper()
	root := t.TempDir()
	ws = filepath.Join(root, "workspace")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	return ws, []string{"SUPERVISOR_SYNC=dir:" + filepath.Join(root, "mirror")}
}

func TestSubmitExitsWithTheRunsStatusAndPrintsItsOutput(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, env)
	tests := []struct {
		script string
		code   int
		out    string
	}{
		{"echo one; echo two", 0, "one\ntwo\n"},
		{"echo failing; exit 3", 3, "failing\n"},
		{"kill -TERM $$", 143, ""},
	}
	for _, tt := range tests {
		s := startSubmit(t, d, ws, nil, "--", "sh", "-c", tt.script)
		if code := s.run(t); code != tt.code || s.stdout.String() != tt.out {
			t.Errorf("%q: status %d, stdout %q; want %d, %q (stderr %s)", tt.script, code,
				s.stdout.String(), tt.code, tt.out, s.stderr.String())
		}
	}
	// An unknown command is the run's 127, as with `supervisor run`.
	s := startSubmit(t, d, ws, nil, "--", "no-such-command-here")
	if code := s.run(t); code != 127 {
		t.Errorf("unknown command: status %d, want 127", code)
	}
	if !strings.Contains(s.stderr.String(), "command not found: no-such-command-here") {
		t.Errorf("unknown command: submit's stderr does not say why: %q", s.stderr.String())
	}
}

func TestSubmitPassesTheAllowListedEnvironmentAndNamedVariables(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, append(env, "DAEMON_ONLY=from-daemon"))
	s := startSubmit(t, d, ws,
		[]string{"ANTHROPIC_MODEL=m1", "PRIVATE=no", "EXTRA=yes", "SUPERVISOR_SYNC_TOKEN=t0k"},
		"--env", "EXTRA", "--env", "SET=here", "--",
		"sh", "-c", `echo "$ANTHROPIC_MODEL|$PRIVATE|$EXTRA|$SET|$DAEMON_ONLY|$SUPERVISOR_SYNC_TOKEN|$(pwd)"`)
	if code := s.run(t); code != 0 {
		t.Fatalf("status %d: %s", code, s.stderr.String())
	}
	want := "m1||yes|here|from-daemon||" + ws + "\n"
	if got := s.stdout.String(); got != want {
		t.Errorf("child saw %q, want %q", got, want)
	}
}

func TestSecondSubmitWhileARunIsInProgressIsRefused(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, env)
	first := startSubmit(t, d, ws, nil, "--", "sh", "-c", "sleep 30")
	id := d.busyRun(t)

	second := startSubmit(t, d, ws, nil, "--", "true")
	if code := second.run(t); code != exitNoRun ||
		!strings.Contains(second.stderr.String(), "another run is in progress") {
		t.Errorf("second submit: status %d, stderr %q; want %d and a busy message",
			code, second.stderr.String(), exitNoRun)
	}
	if err := d.client.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if code := first.run(t); code != 143 {
		t.Errorf("stopped run: submit status %d, want 143", code)
	}
}

func TestKillingSubmitLeavesTheRunRunning(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, env)
	marker := filepath.Join(ws, "finished")
	s := startSubmit(t, d, ws, nil, "--", "sh", "-c", "sleep 1; echo done > finished")
	id := d.busyRun(t)

	for _, sig := range []syscall.Signal{syscall.SIGTERM} {
		if err := s.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := s.wait(t); code != 128+int(sig) {
			t.Errorf("submit after %v: status %d, want %d", sig, code, 128+int(sig))
		}
	}
	if !strings.Contains(s.stderr.String(), "goes on in the daemon") {
		t.Errorf("submit did not say the run goes on: %q", s.stderr.String())
	}
	if code := d.runEnds(t, id); code != 0 {
		t.Errorf("the run ended with %d, want 0", code)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the run did not finish its work: %v", err)
	}

	// SIGKILL cannot be caught: the run goes on all the more.
	s = startSubmit(t, d, ws, nil, "--", "sh", "-c", "sleep 1; echo again > finished")
	id = d.busyRun(t)
	_ = s.cmd.Process.Kill()
	_ = s.wait(t)
	if code := d.runEnds(t, id); code != 0 {
		t.Errorf("after SIGKILL of submit the run ended with %d, want 0", code)
	}
}

func TestSubmitWithForwardSignalsStopsTheRun(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, env)
	s := startSubmit(t, d, ws, nil, "--forward-signals", "--", "sh", "-c", "sleep 30")
	id := d.busyRun(t)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.wait(t); code != 143 {
		t.Errorf("submit status %d, want the run's 143 (stderr %s)", code, s.stderr.String())
	}
	info, err := d.client.Run(t.Context(), id)
	if err != nil || info.State != control.StateExited {
		t.Errorf("run after a forwarded SIGTERM: %+v, %v; want exited", info, err)
	}
}

func TestSubmitRefusesDaemonFlagsAndServeRefusesATCPAPIWithoutAToken(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, env)
	s := startSubmit(t, d, ws, nil, "--env", "SUPERVISOR_SYNC=x", "--", "true")
	if code := s.run(t); code != exitUsage {
		t.Errorf("--env SUPERVISOR_SYNC: status %d, want %d", code, exitUsage)
	}
	var stderr bytes.Buffer
	if code := dispatch([]string{"serve", "--control-listen", "127.0.0.1:0"}, &stderr,
		&stderr); code != exitUsage || !strings.Contains(stderr.String(), "--control-token-file") {
		t.Errorf("serve --control-listen without a token: %d %q", code, stderr.String())
	}
	if _, err := d.client.Start(t.Context(), control.StartRequest{Argv: []string{"true"},
		Options: []string{"--listen=0.0.0.0:1"}}); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("a run with --listen: %v, want ErrInvalid", err)
	}
}

func TestServeStopsOnSIGTERMAfterTheRunsFlush(t *testing.T) {
	ws, env := serveFixture(t)
	d := startServe(t, ws, env)
	s := startSubmit(t, d, ws, nil, "--", "sh", "-c", "echo late > late.txt; sleep 30")
	// The daemon is stopped once the run has written its file, which the
	// final flush must then deliver. The file exists, empty, from the
	// shell's open until echo writes: only its content says it is written.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile(filepath.Join(ws, "late.txt")); err == nil &&
			string(data) == "late\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never wrote late.txt")
		}
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t, 30*time.Second); code != 0 {
		t.Errorf("daemon exit status %d, want 0", code)
	}
	if code := s.wait(t); code != 143 {
		t.Errorf("submit status %d, want the run's 143", code)
	}
	mirror := strings.TrimPrefix(env[0], "SUPERVISOR_SYNC=dir:")
	if data, err := os.ReadFile(filepath.Join(mirror, "late.txt")); err != nil ||
		string(data) != "late\n" {
		t.Errorf("late.txt in the mirror: %q, %v", data, err)
	}
	if _, err := os.Lstat(d.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket outlived the daemon: %v", err)
	}
}
