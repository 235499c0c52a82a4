package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunExitStatus checks the exit status table of DESIGN.md section 3
// through the real binary, with and without a pty.
func TestRunExitStatus(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"child exit code", []string{"--", "sh", "-c", "exit 3"}, 3},
		{"child success", []string{"--", "true"}, 0},
		{"child killed by SIGKILL", []string{"--", "sh", "-c", "kill -KILL $$"}, 137},
		{"child killed by SIGTERM", []string{"--", "sh", "-c", "kill -TERM $$"}, 143},
		{"command not found", []string{"--", "no-such-command-here"}, 127},
		{"command not executable", []string{"--", notExecutable}, 126},
		{"command is a directory", []string{"--", dir}, 126},
		{"no command", []string{"--"}, exitUsage},
		{"unknown flag", []string{"--no-such-flag", "--", "true"}, exitUsage},
		{"bad duration", []string{"--grace", "soon", "--", "true"}, exitUsage},
	}
	for _, pty := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/pty=%v", tt.name, pty), func(t *testing.T) {
				ws := t.TempDir()
				args := []string{"run", "--sync", "dir:" + filepath.Join(t.TempDir(), "m"),
					"--listen", ""}
				if !pty {
					args = append(args, "--no-pty")
				}
				sup := startSupervisor(t, ws, nil, append(args, tt.args...)...)
				if got := sup.wait(t, 30*time.Second); got != tt.want {
					t.Errorf("exit status %d, want %d", got, tt.want)
				}
			})
		}
	}
}

func TestRunWithoutSyncIsAUsageError(t *testing.T) {
	sup := startSupervisor(t, t.TempDir(), nil, "run", "--", "true")
	if got := sup.wait(t, 10*time.Second); got != exitUsage {
		t.Errorf("exit status %d, want %d", got, exitUsage)
	}
	if !strings.Contains(sup.stderr.String(), "--sync is required") {
		t.Errorf("stderr does not say what is missing:\n%s", sup.stderr.String())
	}
}

func TestRunRefusesAMirrorThatOverlapsTheWorkspace(t *testing.T) {
	root := t.TempDir()
	ws := filepath.Join(root, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mirror := range map[string]string{
		"inside":        filepath.Join(ws, "mirror"),
		"the workspace": ws,
		"containing it": root,
	} {
		t.Run(name, func(t *testing.T) {
			sup := startSupervisor(t, ws, nil, "run", "--sync", "dir:"+mirror,
				"--listen", "", "--", "true")
			if got := sup.wait(t, 10*time.Second); got != exitUsage {
				t.Errorf("exit status %d, want %d", got, exitUsage)
			}
		})
	}
}

// TestMalformedAgentOutputIsCountedAndPassedThrough feeds the supervisor a
// child whose output mixes valid stream-json with everything that goes
// wrong in practice. stdout must carry it byte for byte, the valid lines
// must still be decoded, and the bad ones counted.
func TestMalformedAgentOutputIsCountedAndPassedThrough(t *testing.T) {
	for _, pty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			testMalformedOutput(t, pty)
		})
	}
}

func testMalformedOutput(t *testing.T, pty bool) {
	root := t.TempDir()
	ws, mirror := filepath.Join(root, "ws"), filepath.Join(root, "mirror")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789abcdef", 4<<20/16) // a 4 MiB Write, as the CLI prints it
	var out bytes.Buffer
	out.WriteString("warning: this is not json\n")
	fmt.Fprintf(&out, `{"subtype":"init","type":"system","cwd":%q,"session_id":"s1","model":"m"}`+"\r\n", ws)
	fmt.Fprintf(&out, `{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1",`+
		`"name":"Write","input":{"file_path":"big.txt","content":%q}}]}}`+"\n", big)
	out.WriteString(`{"type":"assistant","message":{"content":[{"type":"tool_use"` + "\n")
	out.WriteString("\x1b[?25l" + `{"type":"user","message":{"content":[{"type":"tool_result",` +
		`"tool_use_id":"t1","content":"ok"}]}}` + "\n")
	out.WriteString(`{"type":"rate_limit_event","rate_limit_info":{}}` + "\n")
	out.WriteString(`{"type":"brand_new_type","x":[1,2,3]}` + "\n")
	out.WriteString(`{"num_turns":1,"type":"result","subtype":"success","is_error":false,` +
		`"total_cost_usd":0.25,"usage":{"input_tokens":10,"output_tokens":20,` +
		`"cache_read_input_tokens":30,"cache_creation_input_tokens":40}}` + "\n")
	out.WriteString("\x1b[?25h")
	fixture := filepath.Join(root, "output.bin")
	if err := os.WriteFile(fixture, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// The child writes the file its Write line names, prints the fixture,
	// then waits until the test has scraped the metrics.
	hold := filepath.Join(root, "hold")
	printed := filepath.Join(root, "printed")
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bigSource := filepath.Join(root, "big.src")
	if err := os.WriteFile(bigSource, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`cp %q big.txt; cat %q; : > %q; `+
		`while [ -e %q ]; do sleep 0.02; done`, bigSource, fixture, printed, hold)
	args := []string{"run", "--sync", "dir:" + mirror, "--listen", "127.0.0.1:0"}
	if !pty {
		args = append(args, "--no-pty")
	}
	sup := startSupervisor(t, ws, nil,
		append(args, "--", "sh", "-c", script)...)
	addr := sup.metricsAddr(t)
	waitFor(t, func() bool { _, err := os.Stat(printed); return err == nil })

	// The decoder runs behind the output; wait for it to reach the end.
	var m map[string]float64
	waitFor(t, func() bool {
		m = scrape(t, addr)
		return m[`supervisor_agent_events_total{type="result"}`] == 1
	})
	want := map[string]float64{
		`supervisor_agent_parse_errors_total{reason="not_json"}`:         2,
		`supervisor_agent_events_total{type="system"}`:                   1,
		`supervisor_agent_events_total{type="assistant"}`:                1,
		`supervisor_agent_events_total{type="user"}`:                     1,
		`supervisor_agent_events_total{type="rate_limit_event"}`:         1,
		`supervisor_agent_events_total{type="other"}`:                    1,
		`supervisor_agent_tool_uses_total{tool="Write"}`:                 1,
		`supervisor_agent_sessions_total{outcome="success"}`:             1,
		`supervisor_agent_cost_usd_total`:                                0.25,
		`supervisor_agent_tokens_total{kind="cache_creation"}`:           40,
		`supervisor_changes_detected_total{source="agent"}`:              1,
		`supervisor_agent_parse_errors_total{reason="too_long"}`:         0,
		`supervisor_sync_operations_total{op="put",result="failure"}`:    0,
		`supervisor_sync_operations_total{op="delete",result="success"}`: 0,
	}
	waitFor(t, func() bool {
		m = scrape(t, addr)
		return m[`supervisor_sync_operations_total{op="put",result="success"}`] >= 1
	})
	// The watcher may see big.txt while cp is still writing it and send a
	// partial copy first; the agent's confirmation then sends the rest, so
	// puts are not counted exactly. The mirror must end with the whole file
	// (checked below).
	for series, v := range want {
		if m[series] != v {
			t.Errorf("%s = %v, want %v", series, m[series], v)
		}
	}

	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	if code := sup.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if !bytes.Equal(sup.stdout.Bytes(), out.Bytes()) {
		t.Errorf("stdout differs from what the child printed: %d bytes, want %d",
			sup.stdout.Len(), out.Len())
	}
	if data, err := os.ReadFile(filepath.Join(mirror, "big.txt")); err != nil || string(data) != big {
		t.Errorf("mirror's big.txt: %d bytes, %v", len(data), err)
	}
}

// TestHealthFollowsReadiness runs `supervisor health` against a running
// supervisor and against an address where none listens.
func TestHealthFollowsReadiness(t *testing.T) {
	root := t.TempDir()
	hold := filepath.Join(root, "hold")
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sup := startSupervisor(t, root, nil, "run", "--sync", "dir:"+filepath.Join(t.TempDir(), "m"),
		"--listen", "127.0.0.1:0", "--", "sh", "-c",
		fmt.Sprintf("while [ -e %q ]; do sleep 0.02; done", hold))
	addr := sup.metricsAddr(t)

	var out []byte
	waitFor(t, func() bool {
		var err error
		out, err = exec.Command(supervisorBin, "health", "--listen", addr).CombinedOutput()
		return err == nil
	})
	if !strings.Contains(string(out), "ready") {
		t.Errorf("health printed %q", out)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	sup.wait(t, 30*time.Second)

	cmd := exec.Command(supervisorBin, "health", "--listen", addr, "--timeout", "1s")
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("health against a stopped supervisor: %v, output %q; want exit 1", err, out)
	}
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
