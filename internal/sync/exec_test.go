package sync

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/proc"
)

// countingStarter is the reaper, counting the processes started through it.
type countingStarter struct {
	*proc.Reaper
	started atomic.Int64
}

func (c *countingStarter) Start(cmd proc.Command) (int, <-chan proc.Status, error) {
	c.started.Add(1)
	return c.Reaper.Start(cmd)
}

// startReaper runs a reaper for the test, as the supervisor does for its
// whole life.
func startReaper(t *testing.T) *countingStarter {
	t.Helper()
	r := proc.NewReaper(nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return &countingStarter{Reaper: r}
}

func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestExecBackend(t *testing.T, f *fixture, template string, timeout time.Duration,
	log hclog.Logger) (*ExecBackend, *countingStarter) {
	t.Helper()
	ws, err := change.NewWorkspace(f.workspace)
	if err != nil {
		t.Fatal(err)
	}
	starter := startReaper(t)
	b, err := NewExecBackend(template, TargetOptions{Workspace: ws, Starter: starter,
		Timeout: timeout, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return b, starter
}

// readCalls returns the argument lists record.sh was called with.
func readCalls(t *testing.T, dir string) [][]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
		calls = append(calls, fields)
	}
	return calls
}

func TestExecBackendPassesHostileFileNamesAsSingleArguments(t *testing.T) {
	f := newFixture(t)
	calls, mirror := t.TempDir(), t.TempDir()
	template := "/bin/sh " + testdataPath(t, "record.sh") + " " + calls + " " + mirror +
		" {op} {path} {abs}"
	backend, starter := newTestExecBackend(t, f, template, 10*time.Second, nil)
	f.close()
	f.open(withBackend(backend))
	f.start()

	names := []string{
		"semi;colon.txt",
		"$(touch x).txt",
		"`touch y`.txt",
		"it's a quote.txt",
		`double"quote.txt`,
		"with space.txt",
		"dir with space/{op} & {path} | rm.txt",
	}
	for _, name := range names {
		f.write(name, "content of "+name)
		f.hint(change.SourceAgent, name)
	}
	f.flush()

	got := readCalls(t, calls)
	if len(got) != len(names) {
		t.Fatalf("%d calls, want %d: %q", len(got), len(names), got)
	}
	seen := map[string]bool{}
	for _, call := range got {
		if len(call) != 4 || call[0] != "3" || call[1] != "put" ||
			call[3] != filepath.Join(f.workspace, call[2]) {
			t.Errorf("call %q, want 3 arguments: put, the path and its absolute path", call)
			continue
		}
		seen[call[2]] = true
	}
	for _, name := range names {
		if !seen[name] {
			t.Errorf("no call for %q", name)
		}
	}
	want := tree(t, f.workspace)
	delete(want, ".supervisor/manifest.db")
	if diff := treeDiffStrings(want, tree(t, mirror)); diff != "" {
		t.Errorf("mirror differs from the workspace: %s", diff)
	}
	// Nothing in a name was run: no command created x or y anywhere the
	// upload command could write.
	for _, dir := range []string{f.workspace, mirror, calls} {
		for _, stray := range []string{"x", "y"} {
			if _, err := os.Lstat(filepath.Join(dir, stray)); err == nil {
				t.Errorf("%s exists in %s: a file name was run as a command", stray, dir)
			}
		}
	}
	if n := starter.started.Load(); n != int64(len(names)) {
		t.Errorf("%d processes started through the reaper, want %d", n, len(names))
	}

	// A delete gets the same treatment.
	if err := os.Remove(filepath.Join(f.workspace, "semi;colon.txt")); err != nil {
		t.Fatal(err)
	}
	f.hint(change.SourceAgent, "semi;colon.txt")
	f.flush()
	if _, err := os.Lstat(filepath.Join(mirror, "semi;colon.txt")); err == nil {
		t.Error("the delete did not reach the mirror")
	}
}

func TestExecBackendRetriesAFailingCommandAndLogsItsOutput(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})
	state := filepath.Join(t.TempDir(), "calls")
	template := "/bin/sh " + testdataPath(t, "flaky.sh") + " " + state + " {path}"
	backend, _ := newTestExecBackend(t, f, template, 10*time.Second, log.Named("backend"))
	f.close()
	f.open(withBackend(backend))
	f.start()

	f.write("a.txt", "a")
	f.hint(change.SourceAgent, "a.txt")
	f.flush()

	if got := testutil.ToFloat64(f.metrics.SyncRetries); got != 2 {
		t.Errorf("retries %v, want 2", got)
	}
	if _, ok := f.queue.Manifest().Get("a.txt"); !ok {
		t.Error("a.txt is not in the manifest after the third call succeeded")
	}
	errs := f.queue.Status().LastErrors
	if len(errs) != 2 || !strings.Contains(errs[0].Error, "exit status 3") ||
		!strings.Contains(errs[0].Error, "server said no") {
		t.Errorf("last errors %+v, want two naming the exit status and the stderr", errs)
	}
	for _, line := range []string{"uploading a.txt, attempt 1", "uploading a.txt, attempt 3"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("the command's output %q is not logged:\n%s", line, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "backend: command output") {
		t.Errorf("the command's output is not under the backend's logger:\n%s", logs.String())
	}
}

func TestExecBackendKillsACommandThatOutlivesItsTimeout(t *testing.T) {
	f := newFixture(t)
	// The command leaves a grandchild that holds its output open too.
	template := `sh -c 'sleep 30 & sleep 30' hang {path}`
	backend, _ := newTestExecBackend(t, f, template, 200*time.Millisecond, nil)

	start := time.Now()
	err := backend.Delete(context.Background(), "a.txt")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "did not finish within 200ms") {
		t.Errorf("Delete = %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Delete took %s after a 200ms timeout", elapsed)
	}
}

func TestExecBackendFeedsThePutContentOnStandardInput(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "received")
	template := `sh -c 'cat > "$1"' put ` + out + ` {path}`
	backend, _ := newTestExecBackend(t, f, template, 10*time.Second, nil)
	content := strings.Repeat("0123456789", 100_000) // more than a pipe holds

	err := backend.Put(context.Background(), "a.txt", strings.NewReader(content),
		int64(len(content)), 0o644)
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != content {
		t.Errorf("the command read %d bytes (%v), want %d", len(got), err, len(content))
	}
}

func TestSplitTemplate(t *testing.T) {
	tests := []struct {
		template string
		want     []string
		wantErr  string
	}{
		{template: "upload {op} {path}", want: []string{"upload", "{op}", "{path}"}},
		{template: "  up\t--to  's3://b/{path}' ", want: []string{"up", "--to", "s3://b/{path}"}},
		{template: `up "a b" '' {abs}`, want: []string{"up", "a b", "", "{abs}"}},
		{template: `up it"'"s {path}`, want: []string{"up", "it's", "{path}"}},
		{template: "up $HOME;rm {path}", want: []string{"up", "$HOME;rm", "{path}"}},
		{template: "", wantErr: "empty"},
		{template: "up 'x {path}", wantErr: "unterminated"},
		{template: "up {op}", wantErr: "names no file"},
		{template: "up {file}", wantErr: "unknown placeholder {file}"},
	}
	for _, tt := range tests {
		got, err := splitTemplate(tt.template)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("splitTemplate(%q) = %q, %v; want an error about %q",
					tt.template, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitTemplate(%q) = %q, %v; want %q", tt.template, got, err, tt.want)
		}
	}
}

func TestExecBackendReplacesPlaceholdersOnlyOnce(t *testing.T) {
	ws, err := change.NewWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewExecBackend("true --op={op} s3://b/{path} {abs}",
		TargetOptions{Workspace: ws, Starter: &countingStarter{}})
	if err != nil {
		t.Fatal(err)
	}
	got := b.Argv("put", "{op}/{abs} x.txt")
	want := []string{"true", "--op=put", "s3://b/{op}/{abs} x.txt",
		filepath.Join(ws.Root(), "{op}/{abs} x.txt")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Argv = %q, want %q", got, want)
	}
}

func TestExecEnvDropsSupervisorSettingsAndAddsTheToken(t *testing.T) {
	got := execEnv([]string{"PATH=/bin", "SUPERVISOR_SYNC_TOKEN=old", "SUPERVISOR_SYNC=x",
		"HOME=/root"}, "new")
	want := []string{"PATH=/bin", "HOME=/root", "SUPERVISOR_SYNC_TOKEN=new"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("execEnv = %q, want %q", got, want)
	}
}
