package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/control"
	"github.com/agent-supervisor/supervisor/internal/fakeapi"
)

// streamedRun is what an SSE client saw of one run.
type streamedRun struct {
	lines   []string
	synced  []string // "op path", in stream order
	order   []string // event types in stream order
	exit    control.ExitData
	lastSeq uint64
}

func streamRun(t *testing.T, client *control.Client, id string) streamedRun {
	t.Helper()
	var r streamedRun
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var prev uint64
	_, err := client.Events(ctx, id, 0, func(e control.Event) error {
		if e.ID != prev+1 {
			t.Errorf("run %s: event %d after %d", id, e.ID, prev)
		}
		prev = e.ID
		r.order = append(r.order, e.Type)
		switch e.Type {
		case control.EventLine:
			r.lines = append(r.lines, string(e.Data))
		case control.EventSynced:
			var d control.SyncedData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Errorf("synced event %q: %v", e.Data, err)
			}
			r.synced = append(r.synced, d.Op+" "+d.Path)
		case control.EventExit:
			if err := json.Unmarshal(e.Data, &r.exit); err != nil {
				t.Errorf("exit event %q: %v", e.Data, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("stream of run %s: %v", id, err)
	}
	r.lastSeq = prev
	return r
}

// TestServeTakesSequentialClaudeRunsFromSubmit runs the real CLI twice in
// one workspace through `supervisor serve` and `supervisor submit`, the
// way an E2B sandbox would: the first run writes a small project
// (testdata/sessions/demo.json), the second edits one file and adds one
// (followup.json). Both reach the mirror; the second uploads only its own
// changes because the runs share the manifest; submit prints the CLI's
// stream-json and exits with its status; an SSE client gets every line and
// every synced file of each run, in order, ending with the exit.
func TestServeTakesSequentialClaudeRunsFromSubmit(t *testing.T) {
	claude := requireClaude(t)
	root := t.TempDir()
	ws, mirror, home := filepath.Join(root, "workspace"), filepath.Join(root, "mirror"),
		filepath.Join(root, "home")
	for _, dir := range []string{ws, home} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The daemon knows only where to sync: the prompt, the API endpoint
	// and its key come with each submit, as they would in a sandbox whose
	// daemon started at template build time.
	d := startServe(t, ws, []string{"SUPERVISOR_SYNC=dir:" + mirror})
	notState := func(rel string) bool { return rel == ".supervisor" }

	sessions := []struct {
		file string
		want []string // the paths the run put, sorted, each once
	}{
		{"demo.json", []string{"README.md", "docs/CHANGELOG.md", "src/hello.sh"}},
		// The second run shares the manifest: only what it changed goes out.
		{"followup.json", []string{"README.md", "src/VERSION"}},
	}
	for i, sess := range sessions {
		session, err := fakeapi.LoadSession("../../testdata/sessions/"+sess.file,
			map[string]string{"workspace": ws})
		if err != nil {
			t.Fatal(err)
		}
		api, err := fakeapi.Listen(fakeapi.DefaultAddr, &fakeapi.Handler{Session: session})
		if err != nil {
			t.Fatal(err)
		}
		// ANTHROPIC_* and IS_SANDBOX pass through submit's allow-list;
		// HOME needs --env.
		args := append([]string{"--env", "HOME", "--", claude},
			fakeapi.ClaudeArgs("run "+sess.file)...)
		sub := startSubmit(t, d, ws, fakeapi.ClaudeEnv(api.URL(), home), args...)
		code := sub.wait(t)
		_ = api.Close()
		if code != 0 {
			t.Fatalf("run %d: submit exited %d, want the CLI's 0; stderr:\n%s", i+1, code,
				sub.stderr.String())
		}

		// The mirror equals the workspace once the run is over.
		if diff := treeDiff(treeDigest(t, ws, notState), treeDigest(t, mirror, nil)); diff != "" {
			t.Errorf("run %d: mirror differs from the workspace: %s", i+1, diff)
		}

		// The SSE stream of the run just ended.
		runs := listRuns(t, d.client)
		if len(runs) != i+1 {
			t.Fatalf("daemon lists %d runs, want %d", len(runs), i+1)
		}
		got := streamRun(t, d.client, runs[i].ID)
		if put := lastingPuts(ws, got.synced); strings.Join(put, ",") != strings.Join(sess.want, ",") {
			t.Errorf("run %d put %q (events %q), want exactly %q", i+1, put, got.synced, sess.want)
		}
		if n := len(got.order); n == 0 || got.order[n-1] != control.EventExit ||
			got.exit.ExitCode != 0 {
			t.Errorf("run %d: stream does not end with exit 0: %v %+v", i+1, got.order,
				got.exit)
		}
		assertLinesPrecedeTheirSyncs(t, ws, i+1, got)

		// submit printed exactly the lines the stream carried.
		want := strings.Join(got.lines, "\n") + "\n"
		if sub.stdout.String() != want {
			t.Errorf("run %d: submit's stdout differs from the stream's lines:\n%s\nvs\n%s",
				i+1, sub.stdout.String(), want)
		}
		if !bytes.Contains(sub.stdout.Bytes(), []byte(`"type":"result"`)) {
			t.Errorf("run %d: no result line in submit's output", i+1)
		}
	}
}

// lastingPuts returns the distinct paths put that still exist in ws, sorted.
// How many puts one path gets depends on timing (an Edit right after a
// Write may share one), and the CLI writes through a temporary file
// (README.md.tmp.*) that the queue may catch and then delete; neither says
// anything about which changes the run sent.
func lastingPuts(ws string, synced []string) []string {
	seen := map[string]bool{}
	var paths []string
	for _, op := range synced {
		path, ok := strings.CutPrefix(op, "put ")
		if !ok || seen[path] || !exists(filepath.Join(ws, path)) {
			continue
		}
		seen[path] = true
		paths = append(paths, path)
	}
	sort.Strings(paths)
	return paths
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// assertLinesPrecedeTheirSyncs checks the stream's order: every synced
// path was named on an output line (the tool call that wrote it) earlier
// in the same stream. Paths gone by the end (the CLI's temporary files)
// were never named; they are left out.
func assertLinesPrecedeTheirSyncs(t *testing.T, ws string, run int, r streamedRun) {
	t.Helper()
	lines, synced := 0, 0
	for _, typ := range r.order {
		switch typ {
		case control.EventLine:
			lines++
		case control.EventSynced:
			path := strings.TrimPrefix(strings.TrimPrefix(r.synced[synced], "put "), "delete ")
			named := !exists(filepath.Join(ws, path))
			for _, l := range r.lines[:lines] {
				named = named || strings.Contains(l, path)
			}
			if !named {
				t.Errorf("run %d: %s synced before any line named it", run, path)
			}
			synced++
		}
	}
}

func listRuns(t *testing.T, c *control.Client) []control.RunInfo {
	t.Helper()
	runs, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return runs
}
