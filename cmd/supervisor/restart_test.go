package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGKILLMidBurstLosesNothingAfterRestart kills the supervisor with
// SIGKILL while its child is still creating files, changes the workspace
// while nothing runs, and starts the supervisor again: the manifest written
// after every operation lets the start-up scan sync exactly what the mirror
// misses, so the mirror ends equal to the workspace.
func TestSIGKILLMidBurstLosesNothingAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-process test")
	}
	ws, base := t.TempDir(), t.TempDir()
	mirror := filepath.Join(base, "mirror")
	pidFile := filepath.Join(base, "child.pid")
	for rel, content := range map[string]string{
		"keep/modified.txt": "before\n", "keep/deleted.txt": "doomed\n", "keep/same.txt": "same\n",
	} {
		writeFile(t, filepath.Join(ws, rel), content)
	}
	args := []string{"run", "--sync", "dir:" + mirror, "--listen", "", "--no-pty"}

	// The child records its process group, then writes files until killed:
	// whenever the supervisor dies, it dies in the middle of the burst.
	burst := `echo $$ > "$PIDFILE"; mkdir -p burst; i=0
while [ $i -lt 100000 ]; do echo "file $i" > burst/f$i; i=$((i+1)); done; sleep 600`
	first := startSupervisor(t, ws, []string{"PIDFILE=" + pidFile},
		append(args, "--", "sh", "-c", burst)...)
	// The mirror holds the pre-existing files and part of the burst.
	waitFor(t, func() bool {
		n, _ := os.ReadDir(filepath.Join(mirror, "burst"))
		_, err := os.Stat(filepath.Join(mirror, "keep", "deleted.txt"))
		return len(n) >= 200 && err == nil
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t, 10*time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("first supervisor exit status %d, want death by SIGKILL", code)
	}
	// The orphaned child would keep writing; stop it the same way.
	killGroup(t, pidFile)

	// While nothing runs: a synced file changes, one goes, one appears.
	writeFile(t, filepath.Join(ws, "keep/modified.txt"), "after\n")
	if err := os.Remove(filepath.Join(ws, "keep/deleted.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ws, "new/created.txt"), "new\n")
	written := len(treeDigest(t, filepath.Join(ws, "burst"), nil))
	mirrored := len(treeDigest(t, filepath.Join(mirror, "burst"), nil))
	t.Logf("burst files written %d, mirrored before the kill %d", written, mirrored)

	second := startSupervisor(t, ws, nil, append(args, "--", "true")...)
	if code := second.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("second supervisor exit status %d, want 0", code)
	}
	skipState := func(rel string) bool { return rel == ".supervisor" }
	// A put cut short by SIGKILL leaves its temporary file in the mirror;
	// the second start must clear it, so it counts as a difference here.
	want, got := treeDigest(t, ws, skipState), treeDigest(t, mirror, nil)
	if diff := treeDiff(want, got); diff != "" {
		t.Fatalf("mirror differs from the workspace after the restart: %s", diff)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// killGroup kills the process group whose leader wrote its pid to pidFile,
// and waits until the leader is gone.
func killGroup(t *testing.T, pidFile string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid file %q", data)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	waitFor(t, func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}
