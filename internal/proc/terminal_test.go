package proc

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// fakeTerminal opens a pty pair whose slave plays the supervisor's stdin
// and whose master plays the person typing.
func fakeTerminal(t *testing.T, rows, cols uint16) (keyboard, stdin *os.File) {
	t.Helper()
	keyboard, stdin, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = keyboard.Close()
		_ = stdin.Close()
	})
	// Through the keyboard side: Setsize calls Fd, which would put stdin in
	// blocking mode (a real stdin usually is; the fake one stays pollable
	// to cover the other case).
	if err := pty.Setsize(keyboard, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	return keyboard, stdin
}

func termios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	con := consoleOf(f)
	if con == nil {
		t.Fatal("not a terminal")
	}
	tio, err := unix.IoctlGetTermios(con.fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

func TestChildUnderPTYWithTerminalGetsKeystrokesAndWindowSize(t *testing.T) {
	// A real stdin is usually in blocking mode, where a read cannot be
	// interrupted; a pollable one is the other case. Wait must return in
	// both, with the terminal restored.
	for _, blocking := range []bool{false, true} {
		name := "pollable stdin"
		if blocking {
			name = "blocking stdin"
		}
		t.Run(name, func(t *testing.T) {
			keyboard, stdin := fakeTerminal(t, 33, 101)
			if blocking {
				stdin.Fd() // puts the descriptor in blocking mode
			}
			before := termios(t, stdin)

			c, out := start(t, Config{
				Argv:  []string{"sh", "-c", `stty size; read line; echo "got $line"`},
				PTY:   true,
				Stdin: stdin,
			})
			out.waitFor(t, "33 101")

			during := termios(t, stdin)
			if during.Lflag&(unix.ICANON|unix.ECHO) != 0 {
				t.Error("the supervisor's terminal is not in raw mode while the child runs")
			}
			if _, err := keyboard.Write([]byte("hello\r")); err != nil {
				t.Fatal(err)
			}
			if code := wait(t, c).ExitCode(); code != 0 {
				t.Errorf("exit code = %d", code)
			}

			// Interactive mode keeps the pty's output processing, so lines
			// end in CRLF as on any terminal.
			if got := out.String(); !strings.Contains(got, "got hello\r\n") {
				t.Errorf("output %q lacks the typed line", got)
			}
			if after := termios(t, stdin); !reflect.DeepEqual(after, before) {
				t.Errorf("terminal mode not restored:\n got %+v\nwant %+v", after, before)
			}
		})
	}
}

func TestChildWithPipesReadsATerminalStdinDirectly(t *testing.T) {
	keyboard, stdin := fakeTerminal(t, 24, 80)
	before := termios(t, stdin)

	c, out := start(t, Config{
		Argv:  []string{"sh", "-c", `read line; echo "got $line"`},
		Stdin: stdin,
	})
	if _, err := keyboard.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, c).ExitCode(); code != 0 {
		t.Errorf("exit code = %d", code)
	}
	if got := out.String(); got != "got typed\n" {
		t.Errorf("output = %q, want %q", got, "got typed\n")
	}
	if after := termios(t, stdin); !reflect.DeepEqual(after, before) {
		t.Error("pipe mode changed the terminal's mode")
	}
}

func TestChildUnderPTYFollowsTerminalWindowSizeChanges(t *testing.T) {
	keyboard, stdin := fakeTerminal(t, 24, 80)
	c, out := start(t, Config{
		Argv:  []string{"sh", "-c", `trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done`},
		PTY:   true,
		Stdin: stdin,
	})
	out.waitFor(t, "ready")

	// A terminal emulator resizes the terminal and the kernel tells its
	// foreground process, the supervisor, with SIGWINCH.
	if err := pty.Setsize(keyboard, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(os.Getpid(), unix.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "40 120")

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Wait()
}
