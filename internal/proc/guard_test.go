package proc

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// guardHelperEnv makes the test binary act as a supervisor that puts its
// terminal stdin in raw mode and then dies the way the value says.
const guardHelperEnv = "PROC_GUARD_HELPER"

// TestGuardHelper is not a test: it is the process the restore tests
// start, with guardHelperEnv set and the terminal as stdin.
func TestGuardHelper(t *testing.T) {
	how := os.Getenv(guardHelperEnv)
	if how == "" {
		t.Skip("helper process for the terminal restore tests")
	}
	con := consoleOf(os.Stdin)
	if con == nil {
		os.Exit(3)
	}
	if err := con.makeRaw(); err != nil {
		os.Exit(4)
	}
	// The parent waits for this line before it checks raw mode.
	_, _ = os.Stdout.WriteString("raw\n")

	switch how {
	case "panic":
		// Wait for the parent's key: it checks raw mode first, and the
		// panic restores the terminal at once.
		var key [1]byte
		_, _ = os.Stdin.Read(key[:])
		go func() {
			defer RestoreOnPanic()
			panic("a bug in some goroutine")
		}()
	case "signal":
		// The parent sends the signal.
	}
	time.Sleep(testTimeout)
	os.Exit(5)
}

func TestTerminalIsRestoredWhenTheSupervisorDies(t *testing.T) {
	cases := []struct {
		how  string
		kill syscall.Signal // sent once the terminal is raw; 0 for none
	}{
		{"panic", 0},
		{"signal", syscall.SIGABRT},
		{"signal", syscall.SIGSYS},
	}
	for _, tc := range cases {
		t.Run(tc.how+signalName(tc.kill), func(t *testing.T) {
			keyboard, stdin := fakeTerminal(t, 24, 80)
			before := termios(t, stdin)

			outR, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer outR.Close()
			pid, done, err := testReaper.Start(Command{
				Path:   os.Args[0],
				Argv:   []string{os.Args[0], "-test.run=^TestGuardHelper$"},
				Env:    append(os.Environ(), guardHelperEnv+"="+tc.how),
				Stdin:  stdin,
				Stdout: outW,
			})
			_ = outW.Close()
			if err != nil {
				t.Fatal(err)
			}

			line, _ := bufio.NewReader(outR).ReadString('\n')
			if line != "raw\n" {
				_ = unix.Kill(pid, syscall.SIGKILL)
				t.Fatalf("helper printed %q, want it to report raw mode", line)
			}
			if raw := termios(t, stdin); raw.Lflag&(unix.ICANON|unix.ECHO) != 0 {
				t.Error("the helper did not put the terminal in raw mode")
			}
			if tc.how == "panic" {
				if _, err := keyboard.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.kill != 0 {
				if err := unix.Kill(pid, tc.kill); err != nil {
					t.Fatal(err)
				}
			}

			var st Status
			select {
			case st = <-done:
			case <-time.After(testTimeout):
				_ = unix.Kill(pid, syscall.SIGKILL)
				t.Fatal("helper did not die")
			}
			if st.ExitCode() == 0 || st.ExitCode() == 5 {
				t.Errorf("helper ended with %v, want it to die of the %s", st, tc.how)
			}
			after := termios(t, stdin)
			if !reflect.DeepEqual(after, before) {
				t.Errorf("terminal left changed after the %s:\n got %+v\nwant %+v",
					strings.TrimSpace(tc.how), after, before)
			}
		})
	}
}
