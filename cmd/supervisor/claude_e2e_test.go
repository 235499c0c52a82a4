package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/fakeapi"
)

// requireClaude returns the real Claude Code CLI, skipping the test when it
// is absent unless SUPERVISOR_REQUIRE_CLAUDE=1 (CI) makes that a failure.
func requireClaude(t *testing.T) string {
	t.Helper()
	bin, err := fakeapi.FindClaude()
	if err != nil {
		if os.Getenv(fakeapi.RequireClaudeEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, fakeapi.RequireClaudeEnv)
		}
		t.Skipf("%v; `make claude` installs it", err)
	}
	return bin
}

// turnCheck is what a test saw at the start of one scripted turn.
type turnCheck struct {
	turn int
	lag  time.Duration // how long the mirror took to equal the workspace
	diff string        // what still differed when the wait gave up
}

// TestClaudeSessionIsMirroredWhileItRuns drives the real CLI through every
// way it changes files (testdata/sessions/e2e.json) under `supervisor run`
// with a dir: mirror, and checks the mirror at the start of every turn,
// the metrics while the session runs, and everything after it ends.
func TestClaudeSessionIsMirroredWhileItRuns(t *testing.T) {
	claude := requireClaude(t)
	root := t.TempDir()
	ws, mirror, outside, home := filepath.Join(root, "workspace"),
		filepath.Join(root, "mirror"), filepath.Join(root, "outside"), filepath.Join(root, "home")
	for _, d := range []string{ws, outside, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	session, err := fakeapi.LoadSession("../../testdata/sessions/e2e.json",
		map[string]string{"workspace": ws, "outside": outside})
	if err != nil {
		t.Fatal(err)
	}
	notState := func(rel string) bool { return rel == ".supervisor" }

	// At the start of each turn the CLI has finished the previous turn's
	// tools and waits for the model. The mirror must catch up with the
	// workspace during that wait: the turn is served only afterwards.
	var (
		mu        sync.Mutex
		checks    []turnCheck
		duringRun map[string]float64
		sup       *supervised
		supReady  = make(chan struct{})
	)
	handler := &fakeapi.Handler{Session: session, OnTurn: func(turn int) {
		<-supReady
		start := time.Now()
		diff := "never compared"
		for time.Since(start) < 5*time.Second {
			if diff = treeDiff(treeDigest(t, ws, notState), treeDigest(t, mirror, nil)); diff == "" {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		check := turnCheck{turn: turn, lag: time.Since(start), diff: diff}
		var samples map[string]float64
		if turn == len(session.Turns)-1 {
			samples = scrape(t, sup.metricsAddr(t))
		}
		mu.Lock()
		defer mu.Unlock()
		checks = append(checks, check)
		if samples != nil {
			duringRun = samples
		}
	}}
	api, err := fakeapi.Listen(fakeapi.DefaultAddr, handler)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = api.Close() }()

	tee := filepath.Join(root, "tee.out")
	args := append([]string{"run", "--sync", "dir:" + mirror, "--listen", "127.0.0.1:0",
		"--tee", tee, "--log-level", "debug", "--", claude},
		fakeapi.ClaudeArgs("do the work")...)
	sup = startSupervisor(t, ws, fakeapi.ClaudeEnv(api.URL(), home), args...)
	close(supReady)
	code := sup.wait(t, 3*time.Minute)

	// The exit status is the CLI's: its result line says success.
	if code != 0 {
		t.Errorf("exit status %d, want the CLI's 0", code)
	}

	// The mirror caught up before every turn was served.
	mu.Lock()
	defer mu.Unlock()
	if len(checks) != len(session.Turns) {
		t.Errorf("saw %d turns, want %d", len(checks), len(session.Turns))
	}
	for _, c := range checks {
		if c.diff != "" {
			t.Errorf("turn %d started with the mirror behind the workspace: %s", c.turn, c.diff)
		}
		t.Logf("turn %d: mirror equal to the workspace after %s", c.turn, c.lag.Round(time.Microsecond))
	}

	checkFinalMirror(t, ws, mirror, outside, notState)
	checkStdout(t, sup.stdout.Bytes(), tee, handler)

	// Metrics scraped while the session ran count both sources.
	if duringRun == nil {
		t.Fatal("no metrics were scraped during the session")
	}
	for _, series := range []string{
		`supervisor_changes_detected_total{source="agent"}`,
		`supervisor_changes_detected_total{source="fs"}`,
		`supervisor_agent_paths_dropped_total{reason="outside"}`,
		`supervisor_sync_operations_total{op="put",result="success"}`,
		`supervisor_sync_operations_total{op="delete",result="success"}`,
	} {
		if duringRun[series] < 1 {
			t.Errorf("%s = %v during the session, want at least 1", series, duringRun[series])
		}
	}
	if duringRun["supervisor_child_running"] != 1 {
		t.Errorf("supervisor_child_running = %v during the session", duringRun["supervisor_child_running"])
	}
}

// checkFinalMirror compares the mirror with the workspace after the run.
func checkFinalMirror(t *testing.T, ws, mirror, outside string, skip func(string) bool) {
	t.Helper()
	want, got := treeDigest(t, ws, skip), treeDigest(t, mirror, nil)
	if diff := treeDiff(want, got); diff != "" {
		t.Errorf("mirror differs from the workspace after the run: %s", diff)
	}
	if len(want) < 54 {
		t.Errorf("workspace holds %d files; the session makes 54", len(want))
	}
	for _, p := range []string{"src/app/main.txt", "data/big.txt", "gen/a/renamed.txt",
		"notes/café über straße.txt", "docs/one.md"} {
		if _, ok := got[p]; !ok {
			t.Errorf("mirror lacks %s", p)
		}
	}
	for _, p := range []string{"gen/a/f0.txt", "gen/a/b/f1.txt"} {
		if _, ok := got[p]; ok {
			t.Errorf("mirror still holds %s, which the agent renamed or deleted", p)
		}
	}
	if data, err := os.ReadFile(filepath.Join(mirror, "data", "big.txt")); err != nil ||
		len(data) != 2<<20 {
		t.Errorf("mirror's data/big.txt: %d bytes, %v; want 2 MiB", len(data), err)
	}
	if _, err := os.Stat(filepath.Join(outside, "escape.txt")); err != nil {
		t.Errorf("the CLI did not write outside the workspace, so the test proves nothing: %v", err)
	}
	for p := range got {
		if strings.HasSuffix(p, "escape.txt") {
			t.Errorf("the file written outside the workspace reached the mirror as %s", p)
		}
	}
}

// checkStdout checks that stdout carries the CLI's stream-json unchanged:
// every line decodes, stdout equals the --tee copy, every tool result the CLI
// sent to the API is on it, and the 2 MiB Write arrived whole.
func checkStdout(t *testing.T, stdout []byte, tee string, handler *fakeapi.Handler) {
	t.Helper()
	teeData, err := os.ReadFile(tee)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout, teeData) {
		t.Errorf("stdout (%d bytes) differs from the --tee copy (%d bytes)", len(stdout), len(teeData))
	}
	if bytes.Contains(stdout, []byte("\r\n")) {
		t.Error("stdout has CRLF line ends: the pty translated the child's output")
	}

	results := map[string]bool{}
	var sawBigWrite, sawResult bool
	for i, line := range bytes.Split(bytes.TrimRight(stdout, "\n"), []byte("\n")) {
		var msg struct {
			Type    string `json:"type"`
			Message struct {
				Content []struct {
					Type      string          `json:"type"`
					Name      string          `json:"name"`
					ToolUseID string          `json:"tool_use_id"`
					Input     json.RawMessage `json:"input"`
				} `json:"content"`
			} `json:"message"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			// The CLI's cursor escape under a pty is the only other thing allowed.
			if !bytes.HasPrefix(line, []byte("\x1b[")) {
				t.Errorf("stdout line %d is not JSON: %v: %.200q", i+1, err, line)
			}
			continue
		}
		sawResult = sawResult || msg.Type == "result"
		for _, block := range msg.Message.Content {
			if block.Type == "tool_result" {
				results[block.ToolUseID] = true
			}
			if block.Type == "tool_use" && block.Name == "Write" {
				var input struct {
					FilePath string `json:"file_path"`
					Content  string `json:"content"`
				}
				if json.Unmarshal(block.Input, &input) == nil &&
					strings.HasSuffix(input.FilePath, "data/big.txt") {
					sawBigWrite = len(input.Content) == 2<<20
				}
			}
		}
	}
	if !sawResult {
		t.Error("stdout has no result line")
	}
	if !sawBigWrite {
		t.Error("stdout lacks the 2 MiB Write line, or it arrived cut")
	}
	sent := handler.ToolResults()
	if len(sent) < 10 {
		t.Errorf("the CLI reported %d tool results to the API; the session has at least 10", len(sent))
	}
	for _, r := range sent {
		if !results[r.ToolUseID] {
			t.Errorf("tool result %s (%s) went to the API but not to stdout", r.ToolUseID, r.Name)
		}
	}
}
