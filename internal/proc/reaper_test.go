package proc

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestReaperHandsEachStatusToItsStarterWhileOrphansExit(t *testing.T) {
	// Each child leaves 20 orphans behind and exits at once with a code of
	// its own, so that statuses of started children and orphans reach the
	// reaper interleaved.
	const rounds, children = 5, 8
	orphansBefore := testReaper.Orphans()

	for round := range rounds {
		var wg sync.WaitGroup
		for i := range children {
			wg.Go(func() {
				want := 7 + i
				pid, done, err := testReaper.Start(Command{
					Argv: []string{"./testdata/orphans.sh", strconv.Itoa(want)},
				})
				if err != nil {
					t.Errorf("round %d: Start: %v", round, err)
					return
				}
				select {
				case st := <-done:
					if st.Pid != pid || st.ExitCode() != want {
						t.Errorf("round %d: pid %d got %+v, want its own exit code %d",
							round, pid, st, want)
					}
				case <-time.After(testTimeout):
					t.Errorf("round %d: no status for pid %d", round, pid)
				}
			})
		}
		wg.Wait()
	}

	waitNoZombies(t)
	if testReaper.Orphans() == orphansBefore {
		t.Error("no orphan was reaped; is the test process a subreaper?")
	}
}

func TestReaperDeliversStatusOfChildrenThatExitBeforeStartReturns(t *testing.T) {
	// true exits about as fast as a process can: its status is ready to be
	// reaped before Start has returned, and must not be taken for an orphan.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, done, err := testReaper.Start(Command{Argv: []string{"true"}})
			if err != nil {
				t.Errorf("Start: %v", err)
				return
			}
			select {
			case st := <-done:
				if st.ExitCode() != 0 {
					t.Errorf("true: %v", st)
				}
			case <-time.After(testTimeout):
				t.Error("status of a fast child was lost")
			}
		})
	}
	wg.Wait()
}

func TestReaperStartsAPlainCommandWithPipesEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdoutR.Close()

	_, done, err := testReaper.Start(Command{
		Argv:   []string{"sh", "-c", `printf '%s %s' "$GREETING" "$(pwd)"; cat`},
		Env:    []string{"GREETING=hello", "PATH=" + os.Getenv("PATH")},
		Dir:    dir,
		Stdout: stdoutW,
	})
	stdoutW.Close()
	if err != nil {
		t.Fatal(err)
	}

	got, err := io.ReadAll(stdoutR)
	if err != nil {
		t.Fatal(err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	// cat reads the nil Stdin, /dev/null, and adds nothing.
	if want := "hello " + realDir; string(got) != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	if st := <-done; st.ExitCode() != 0 {
		t.Errorf("status = %v", st)
	}
}

func TestStatusExitCodeFollowsTheShellConvention(t *testing.T) {
	cases := []struct {
		st   Status
		want int
		text string
	}{
		{Status{Code: 0}, 0, "exit status 0"},
		{Status{Code: 3}, 3, "exit status 3"},
		{Status{Code: -1, Signal: syscall.SIGKILL}, 137, "killed by signal 9 (killed)"},
		{Status{Code: -1, Signal: syscall.SIGTERM}, 143, "killed by signal 15 (terminated)"},
	}
	for _, tc := range cases {
		if got := tc.st.ExitCode(); got != tc.want {
			t.Errorf("%+v.ExitCode() = %d, want %d", tc.st, got, tc.want)
		}
		if got := tc.st.String(); got != tc.text {
			t.Errorf("%+v.String() = %q, want %q", tc.st, got, tc.text)
		}
	}
}

// waitNoZombies waits until no child of the test process is a zombie: the
// reaper collected every exited one.
func waitNoZombies(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		zombies := zombieChildren(t)
		if len(zombies) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie children left unreaped: %v", zombies)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func zombieChildren(t *testing.T) []int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var zombies []int
	for _, path := range tasks {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(data)) {
			pid, _ := strconv.Atoi(field)
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue // reaped meanwhile
			}
			// The state follows the parenthesised command name.
			rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
			if fields := strings.Fields(rest); len(fields) > 0 && fields[0] == "Z" {
				zombies = append(zombies, pid)
			}
		}
	}
	return zombies
}
