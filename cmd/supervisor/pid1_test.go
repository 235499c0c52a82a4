package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInitScriptRunsSupervisorAsPID1 runs scripts/init.sh, the container's
// entry point, as the first process of a fresh PID namespace, which is how
// the image runs it: the supervisor must end up as PID 1, reap the orphan the
// child leaves, mirror the child's file and exit with the child's status.
func TestInitScriptRunsSupervisorAsPID1(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run this test: unshare %v, euid %d", err, os.Geteuid())
		}
		t.Skip("needs root and unshare (util-linux)")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	binary, err := os.ReadFile(supervisorBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "supervisor"), binary, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(root, "home")
	script, err := filepath.Abs("../../scripts/init.sh")
	if err != nil {
		t.Fatal(err)
	}

	env := []string{
		"HOME=" + home,
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"SUPERVISOR_WORKSPACE=" + filepath.Join(home, "workspace"),
		"SUPERVISOR_STATE_DIR=" + filepath.Join(home, ".supervisor"),
		"SUPERVISOR_SYNC=dir:" + filepath.Join(home, "mirror"),
		"SUPERVISOR_LISTEN=",
	}
	child := `echo "pid1=$(cat /proc/1/comm)"; echo made > made.txt; (sleep 0.1 &); exit 7`
	sup := startSupervisorCommand(t, root, env,
		unshare, "--pid", "--fork", "--mount-proc", script, "sh", "-c", child)
	if code := sup.wait(t, 30*time.Second); code != 7 {
		t.Errorf("exit status %d, want the child's 7", code)
	}
	if out := sup.stdout.String(); !strings.Contains(out, "pid1=supervisor") {
		t.Errorf("PID 1 was not the supervisor; child printed %q", out)
	}
	data, err := os.ReadFile(filepath.Join(home, "mirror", "made.txt"))
	if err != nil || string(data) != "made\n" {
		t.Errorf("mirror's made.txt = %q, %v", data, err)
	}
}
