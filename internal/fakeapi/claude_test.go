package fakeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false,
	"rewrite the transcripts in internal/agent/testdata/real from fresh runs of the real CLI")

// transcriptsDir holds the real CLI's stream-json output for the agent
// package's tests.
const transcriptsDir = "../agent/testdata/real"

// claudeOrSkip returns the CLI's path, or skips the test when it is absent;
// with SUPERVISOR_REQUIRE_CLAUDE=1 a missing CLI fails the test instead.
func claudeOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := FindClaude()
	if err == nil {
		return bin
	}
	if os.Getenv(RequireClaudeEnv) == "1" {
		t.Fatalf("%v (%s=1 makes this a failure)", err, RequireClaudeEnv)
	}
	t.Skipf("skipping test of the real CLI: %v; set %s=1 to fail instead", err, RequireClaudeEnv)
	return ""
}

// cliRun is one run of the real CLI against a fake API.
type cliRun struct {
	root      string // temporary directory holding the three below
	workspace string // the CLI's working directory, {{workspace}}
	outside   string // {{outside}}
	home      string // the CLI's HOME
	handler   *Handler
	stdout    []byte
	lines     []map[string]any // stdout decoded, one object per line
}

// runCLI plays session with the real CLI and returns what it printed. vars
// add to workspace and outside. configure, when not nil, adjusts the
// handler before the CLI starts.
func runCLI(t *testing.T, bin, session string, vars map[string]string,
	configure func(*cliRun)) *cliRun {
	t.Helper()
	r := &cliRun{root: t.TempDir()}
	r.workspace = filepath.Join(r.root, "workspace")
	r.outside = filepath.Join(r.root, "outside")
	r.home = filepath.Join(r.root, "home")
	for _, dir := range []string{r.workspace, r.outside, r.home} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	all := map[string]string{"workspace": r.workspace, "outside": r.outside}
	for k, v := range vars {
		all[k] = v
	}
	s, err := LoadSession(filepath.Join(sessionsDir, session), all)
	if err != nil {
		t.Fatal(err)
	}
	r.handler = &Handler{Session: s}
	if configure != nil {
		configure(r)
	}
	srv, err := Listen("", r.handler)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// A ten-turn session takes a few seconds; two minutes means it hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, ClaudeArgs("do the work")...)
	cmd.Dir = r.workspace
	cmd.Env = ClaudeEnv(srv.URL(), r.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("claude: %v\nstderr:\n%s\nrequests: %v", err, stderr.String(),
			r.handler.Requests())
	}
	r.stdout = stdout.Bytes()

	sc := bufio.NewScanner(bytes.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("stdout line is not JSON: %.200q", sc.Text())
		}
		r.lines = append(r.lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// streamedTurns lists the turn of every streamed request, in order.
func (r *cliRun) streamedTurns() []int {
	var turns []int
	for _, req := range r.handler.Requests() {
		if req.Stream {
			turns = append(turns, req.Turn)
		}
	}
	return turns
}

// checkFinished asserts that the CLI initialised in the workspace, asked for
// each of turns scripted turns once and ended with a successful result
// reporting numTurns. The CLI's num_turns is not the number of API calls: it
// counts one per tool result message plus one, so a response with two tool
// calls counts twice.
func (r *cliRun) checkFinished(t *testing.T, turns, numTurns int) {
	t.Helper()
	if len(r.lines) < 2 {
		t.Fatalf("CLI printed %d lines", len(r.lines))
	}
	first, last := r.lines[0], r.lines[len(r.lines)-1]
	if first["type"] != "system" || first["subtype"] != "init" || first["cwd"] != r.workspace {
		t.Errorf("first line is %v/%v with cwd %v, want system/init in %s",
			first["type"], first["subtype"], first["cwd"], r.workspace)
	}
	if last["type"] != "result" || last["subtype"] != "success" || last["is_error"] != false ||
		last["num_turns"] != float64(numTurns) {
		t.Errorf("last line is %v/%v is_error=%v num_turns=%v, want a successful result "+
			"with num_turns %d", last["type"], last["subtype"], last["is_error"],
			last["num_turns"], numTurns)
	}
	want := make([]int, turns)
	for i := range want {
		want[i] = i
	}
	if got := r.streamedTurns(); !reflect.DeepEqual(got, want) {
		t.Errorf("CLI asked for turns %v, want each of %v once", got, want)
	}
}

// files lists the regular files under dir as slash paths with their sizes.
func files(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

func TestRealCLIPlaysE2ESession(t *testing.T) {
	bin := claudeOrSkip(t)

	// What the workspace must look like when each turn starts: every tool
	// call of the turns before has finished by then.
	checks := map[int]func(t *testing.T, ws string){
		1: func(t *testing.T, ws string) {
			got := readFile(t, filepath.Join(ws, "src/app/main.txt"))
			if got != "status: draft\nowner: nobody\n" {
				t.Errorf("turn 1 starts with main.txt = %q", got)
			}
		},
		4: func(t *testing.T, ws string) {
			if got := files(t, ws)["data/big.txt"]; got != 2<<20 {
				t.Errorf("turn 4 starts with data/big.txt of %d bytes, want 2 MiB", got)
			}
		},
		5: func(t *testing.T, ws string) {
			n := 0
			for p := range files(t, ws) {
				if strings.HasPrefix(p, "gen/") {
					n++
				}
			}
			if n != 50 {
				t.Errorf("turn 5 starts with %d files under gen/, want 50", n)
			}
		},
	}
	var mu sync.Mutex
	var checked []int
	run := runCLI(t, bin, "e2e.json", nil, func(r *cliRun) {
		r.handler.OnTurn = func(turn int) {
			if check, ok := checks[turn]; ok {
				check(t, r.workspace)
				mu.Lock()
				checked = append(checked, turn)
				mu.Unlock()
			}
		}
	})
	run.checkFinished(t, 10, 11)
	mu.Lock()
	defer mu.Unlock()
	if len(checked) != len(checks) {
		t.Errorf("OnTurn checked turns %v, want all of %d", checked, len(checks))
	}

	// The failed Edit is the only error the CLI reports back.
	results := run.handler.ToolResults()
	if len(results) != 10 {
		t.Fatalf("CLI reported %d tool results, want 10: %+v", len(results), results)
	}
	for _, r := range results {
		wantError := r.Turn == 2
		if r.IsError != wantError || r.Name == "" {
			t.Errorf("turn %d %s result is_error=%t %q, want is_error=%t",
				r.Turn, r.Name, r.IsError, r.Content, wantError)
		}
		if wantError && !strings.Contains(r.Content, "String to replace not found") {
			t.Errorf("failed Edit reported %q, want the not-found message", r.Content)
		}
	}

	// The tree as the session leaves it: f0 renamed, f1 in gen/a/b deleted.
	got := files(t, run.workspace)
	want := map[string]int64{
		"src/app/main.txt":           int64(len("status: ready\nowner: nobody\n")),
		"data/big.txt":               2 << 20,
		"notes/café über straße.txt": int64(len("Ein Café über der Straße.\n")),
		"docs/one.md":                6,
		"docs/two.md":                6,
		"gen/a/renamed.txt":          int64(len("file 0 in gen/a\n")),
	}
	for _, d := range []string{"gen/a", "gen/a/b", "gen/a/b/c", "gen/a/b/c/d", "gen/a/b/c/d/e"} {
		for i := 0; i < 10; i++ {
			p := fmt.Sprintf("%s/f%d.txt", d, i)
			if p != "gen/a/f0.txt" && p != "gen/a/b/f1.txt" {
				want[p] = int64(len(fmt.Sprintf("file %d in %s\n", i, d)))
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("workspace holds\n%v\nwant\n%v", got, want)
	}
	edited := readFile(t, filepath.Join(run.workspace, "src/app/main.txt"))
	if edited != "status: ready\nowner: nobody\n" {
		t.Errorf("main.txt = %q after the edits", edited)
	}
	if got := files(t, run.outside); !reflect.DeepEqual(got, map[string]int64{"escape.txt": 22}) {
		t.Errorf("outside directory holds %v, want escape.txt", got)
	}
}

// transcript names a run whose output is kept as a fixture.
type transcript struct {
	file     string // under transcriptsDir
	session  string // under sessionsDir
	vars     map[string]string
	turns    int               // scripted turns, one API call each
	numTurns int               // the result line's num_turns
	files    map[string]string // workspace files and their content afterwards
}

var transcripts = []transcript{{
	file:    "e2e.jsonl",
	session: "e2e.json",
	// The 2 MiB write would make a 4 MiB fixture; 2 KiB shows the same.
	vars:     map[string]string{"big_bytes": "2048"},
	turns:    10,
	numTurns: 11,
	files: map[string]string{
		"src/app/main.txt":           "status: ready\nowner: nobody\n",
		"notes/café über straße.txt": "Ein Café über der Straße.\n",
	},
}, {
	file:     "demo.jsonl",
	session:  "demo.json",
	turns:    5,
	numTurns: 5,
	files: map[string]string{
		"src/hello.sh":      "#!/bin/sh\necho \"hello, world\"\n",
		"docs/CHANGELOG.md": "# Changelog\n- fixed the greeting\n",
	},
}}

// TestRealCLITranscriptsMatchFixtures runs each kept session again and
// compares the output's shape (line types, tool calls with their inputs,
// tool results and their error flags) with the fixture, so a CLI whose
// format drifts is noticed. With -update it rewrites the fixtures instead.
func TestRealCLITranscriptsMatchFixtures(t *testing.T) {
	bin := claudeOrSkip(t)
	for _, tr := range transcripts {
		t.Run(tr.file, func(t *testing.T) {
			run := runCLI(t, bin, tr.session, tr.vars, nil)
			run.checkFinished(t, tr.turns, tr.numTurns)
			for p, want := range tr.files {
				if got := readFile(t, filepath.Join(run.workspace, p)); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}

			clean := run.sanitize()
			if strings.Contains(string(clean), run.root) {
				t.Fatalf("sanitized transcript still names %s", run.root)
			}
			fixture := filepath.Join(transcriptsDir, tr.file)
			if *update {
				if err := os.WriteFile(fixture, clean, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			kept, err := os.ReadFile(fixture)
			if err != nil {
				t.Fatalf("%v (run with -update to record it)", err)
			}
			if diff := firstDifference(shape(t, clean), shape(t, kept)); diff != "" {
				t.Errorf("the CLI's output no longer matches %s (rerun with -update if the "+
					"change is expected): %s", fixture, diff)
			}
		})
	}
}

// Fixed directories that replace a run's temporary ones in kept
// transcripts; internal/agent/testdata/real/README.md documents them.
const (
	fixtureWorkspace = "/workspace"
	fixtureOutside   = "/outside"
	fixtureHome      = "/home/claude"
)

// projectKey is how the CLI names a working directory under
// ~/.claude/projects: every character but letters and digits becomes "-".
var projectKey = regexp.MustCompile(`[^A-Za-z0-9]`)

// sanitize returns stdout with the run's temporary directories replaced by
// the fixed ones.
func (r *cliRun) sanitize() []byte {
	pairs := [][2]string{
		{r.workspace, fixtureWorkspace},
		{r.outside, fixtureOutside},
		{r.home, fixtureHome},
		{projectKey.ReplaceAllString(r.workspace, "-"),
			projectKey.ReplaceAllString(fixtureWorkspace, "-")},
	}
	// Longer first, so that no replacement eats the start of another.
	sort.Slice(pairs, func(i, j int) bool { return len(pairs[i][0]) > len(pairs[j][0]) })
	out := r.stdout
	for _, p := range pairs {
		out = bytes.ReplaceAll(out, []byte(p[0]), []byte(p[1]))
	}
	return out
}

// shape reduces a transcript to what must not change between runs: the
// type of each line and, for messages, each block's type, tool name, input
// and error flag. Ids, timings, costs and session ids differ every run.
func shape(t *testing.T, transcript []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(transcript))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var line struct {
			Type    string `json:"type"`
			Subtype string `json:"subtype"`
			Message struct {
				Content []struct {
					Type    string          `json:"type"`
					Name    string          `json:"name"`
					Input   json.RawMessage `json:"input"`
					IsError bool            `json:"is_error"`
				} `json:"content"`
			} `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("transcript line is not JSON: %.200q", sc.Text())
		}
		s := strings.TrimSpace(line.Type + " " + line.Subtype)
		for _, b := range line.Message.Content {
			s += fmt.Sprintf(" [%s %s %s error=%t]", b.Type, b.Name, b.Input, b.IsError)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// firstDifference describes the first line where two shapes differ, or
// returns "" when they are equal.
func firstDifference(got, want []string) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("line %d is\n%.400s\nwant\n%.400s", i+1, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d lines, want %d", len(got), len(want))
	}
	return ""
}
