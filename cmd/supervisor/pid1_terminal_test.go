package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// terminalSession is the supervisor started on a terminal the test owns,
// as `docker run -it` starts it: the pty slave is its stdin, stdout and
// controlling terminal, and the test types and reads on the master.
type terminalSession struct {
	cmd    *exec.Cmd
	master *os.File
	slave  *os.File
	stderr bytes.Buffer

	mu     sync.Mutex
	screen bytes.Buffer
	read   chan struct{} // the reader got more output
	ended  chan struct{} // the reader saw the end of the terminal
}

func startOnTerminal(t *testing.T, argv ...string) *terminalSession {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(master, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	ts := &terminalSession{master: master, slave: slave,
		read: make(chan struct{}, 1), ended: make(chan struct{})}
	args := []string{"run", "--sync", "dir:" + filepath.Join(t.TempDir(), "m"), "--listen", "",
		"--"}
	ts.cmd = exec.Command(supervisorBin, append(args, argv...)...)
	ts.cmd.Dir = t.TempDir()
	ts.cmd.Env = append(cleanEnv(), quickExit...)
	ts.cmd.Stdin, ts.cmd.Stdout, ts.cmd.Stderr = slave, slave, &ts.stderr
	ts.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := ts.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go ts.readScreen()
	t.Cleanup(func() {
		if ts.cmd.ProcessState == nil {
			_ = ts.cmd.Process.Kill()
			_ = ts.cmd.Wait()
		}
		_ = master.Close()
		_ = slave.Close()
		<-ts.ended
		if t.Failed() {
			t.Logf("screen:\n%q\nsupervisor stderr:\n%s", ts.output(), ts.stderr.String())
		}
	})
	return ts
}

func (ts *terminalSession) readScreen() {
	defer close(ts.ended)
	buf := make([]byte, 4096)
	for {
		n, err := ts.master.Read(buf)
		ts.mu.Lock()
		ts.screen.Write(buf[:n])
		ts.mu.Unlock()
		select {
		case ts.read <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

func (ts *terminalSession) output() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.screen.String()
}

func (ts *terminalSession) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(ts.output(), s) {
		select {
		case <-ts.read:
		case <-deadline:
			t.Fatalf("the terminal never showed %q", s)
		}
	}
}

// exit waits for the supervisor and returns its exit status.
func (ts *terminalSession) exit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ts.cmd.Wait() }()
	select {
	case err := <-done:
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Fatal(err)
		}
		ws := ts.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	case <-time.After(20 * time.Second):
		t.Fatal("the supervisor did not exit")
		return -1
	}
}

func (ts *terminalSession) termios(t *testing.T) *unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(ts.slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

func TestRunInteractiveTerminalPassesKeystrokesAndResizesThenRestoresIt(t *testing.T) {
	// The child shows its window size, again on every resize, then reads
	// a typed line and exits 4.
	script := `stty size; trap 'stty size; : >resized' WINCH; echo ready
while [ ! -e resized ]; do sleep 0.02; done
read line; echo "got $line"; exit 4`
	ts := startOnTerminal(t, "sh", "-c", script)
	before := ts.termios(t)
	ts.waitFor(t, "ready")
	if !strings.Contains(ts.output(), "30 100") {
		t.Errorf("the child did not start with the terminal's size 30x100")
	}
	if during := ts.termios(t); during.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Error("the terminal is not in raw mode while the child runs")
	}

	// Resizing the terminal makes the kernel send SIGWINCH to the
	// supervisor, its foreground process.
	if err := pty.Setsize(ts.master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	ts.waitFor(t, "40 120")
	if _, err := ts.master.Write([]byte("hello\r")); err != nil {
		t.Fatal(err)
	}
	ts.waitFor(t, "got hello")

	if code := ts.exit(t); code != 4 {
		t.Errorf("exit status %d, want the child's 4", code)
	}
	if after := ts.termios(t); !reflect.DeepEqual(after, before) {
		t.Errorf("terminal mode not restored:\n got %+v\nwant %+v", after, before)
	}
}

func TestRunInteractiveTerminalIsRestoredWhenTheSupervisorDiesOfASignal(t *testing.T) {
	ts := startOnTerminal(t, "sh", "-c", "echo ready; while :; do sleep 0.05; done")
	before := ts.termios(t)
	ts.waitFor(t, "ready")
	if during := ts.termios(t); during.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Fatal("the terminal is not in raw mode while the child runs")
	}

	if err := ts.cmd.Process.Signal(syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	if code := ts.exit(t); code == 0 {
		t.Error("the supervisor exited 0 after SIGABRT")
	}
	if after := ts.termios(t); !reflect.DeepEqual(after, before) {
		t.Errorf("terminal left changed after SIGABRT:\n got %+v\nwant %+v", after, before)
	}
}
