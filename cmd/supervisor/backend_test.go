package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncServer is a loopback HTTP sync backend for the end-to-end tests: it
// stores what it is sent under /files/, remembers every Authorization
// header, and takes delay over each request, like a slow backend.
type syncServer struct {
	srv   *http.Server
	addr  string
	delay time.Duration
	gate  chan struct{}

	mu    sync.Mutex
	files map[string]string
	auth  map[string]int // Authorization header -> requests
}

// startSyncServer serves on addr ("127.0.0.1:0" picks a port). A non-nil
// gate holds every request until it is closed.
func startSyncServer(t *testing.T, addr string, delay time.Duration,
	gate chan struct{}) *syncServer {
	t.Helper()
	var l net.Listener
	var err error
	// The port of a backend "coming back" was released a moment ago by
	// the test; another process may hold it briefly.
	for range 50 {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &syncServer{addr: l.Addr().String(), delay: delay, gate: gate,
		files: map[string]string{}, auth: map[string]int{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(s.stop)
	return s
}

func (s *syncServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

func (s *syncServer) url() string { return "http://" + s.addr + "/files" }

func (s *syncServer) serve(w http.ResponseWriter, r *http.Request) {
	if s.gate != nil {
		<-s.gate
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	s.auth[r.Header.Get("Authorization")]++
	s.mu.Unlock()
	path, ok := strings.CutPrefix(r.URL.Path, "/files/")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.files[path] = string(body)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.files, path)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *syncServer) snapshot() (files map[string]string, auth map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, auth = map[string]string{}, map[string]int{}
	for k, v := range s.files {
		files[k] = v
	}
	for k, v := range s.auth {
		auth[k] = v
	}
	return files, auth
}

func (s *syncServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files)
}

// getEndpoint returns the status and body of GET http://addr/path.
func getEndpoint(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// holdScript is a child that runs script, then waits until the hold file
// is removed. It returns the command line and the function that releases
// the child.
func holdScript(t *testing.T, script string) ([]string, func()) {
	t.Helper()
	hold := filepath.Join(t.TempDir(), "hold")
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(hold) })
	argv := []string{"sh", "-c", fmt.Sprintf("%s; while [ -e %q ]; do sleep 0.02; done",
		script, hold)}
	return argv, func() {
		if err := os.Remove(hold); err != nil {
			t.Error(err)
		}
	}
}

// TestSyncTokenReachesTheBackendOnly gives the supervisor a token through
// each of its two sources, runs a child that prints its environment, and
// logs at debug level: the backend receives the token, and neither the
// child's environment, the logs, /status nor /metrics show it.
func TestSyncTokenReachesTheBackendOnly(t *testing.T) {
	const token = "tok-E2E-5ecr3t-8a1f"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"environment", []string{"SUPERVISOR_SYNC_TOKEN=" + token}, nil},
		{"file", nil, []string{"--sync-token-file", tokenFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := startSyncServer(t, "127.0.0.1:0", 0, nil)
			ws := t.TempDir()
			argv, release := holdScript(t, "env; echo data > a.txt")
			args := append([]string{"run", "--sync", server.url(), "--listen", "127.0.0.1:0",
				"--log-level", "debug", "--no-pty"}, tt.args...)
			sup := startSupervisor(t, ws, tt.env, append(append(args, "--"), argv...)...)
			addr := sup.metricsAddr(t)
			waitFor(t, func() bool { return server.count() == 1 })

			_, status := getEndpoint(t, addr, "/status")
			_, metrics := getEndpoint(t, addr, "/metrics")
			release()
			if code := sup.wait(t, 30*time.Second); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}

			files, auth := server.snapshot()
			if files["a.txt"] != "data\n" || auth["Bearer "+token] == 0 {
				t.Fatalf("backend got files %q with Authorization %v; want a.txt with the token",
					files, auth)
			}
			if !strings.Contains(sup.stdout.String(), "PATH=") {
				t.Fatalf("the child did not print its environment:\n%s", sup.stdout.String())
			}
			for name, text := range map[string]string{"the child's environment": sup.stdout.String(),
				"the logs": sup.stderr.String(), "/status": status, "/metrics": metrics} {
				if strings.Contains(text, token) {
					t.Errorf("the token appears in %s", name)
				}
			}
			if strings.Contains(sup.stdout.String(), "SUPERVISOR_") {
				t.Errorf("the child received supervisor settings:\n%s", sup.stdout.String())
			}
		})
	}
}

// TestSIGTERMWithThousandsQueuedDeliversEveryFile stops the supervisor
// while 2,000 files wait behind a slow backend: the final flush sends them
// all, and the exit status is still the child's.
func TestSIGTERMWithThousandsQueuedDeliversEveryFile(t *testing.T) {
	const files = 2000
	gate := make(chan struct{})
	server := startSyncServer(t, "127.0.0.1:0", time.Millisecond, gate)
	ws := t.TempDir()
	written := filepath.Join(t.TempDir(), "written")
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "file $i" > f$i.txt; i=$((i+1)); done; `+
		`: > %q; exec sleep 600`, files, written)
	sup := startSupervisor(t, ws, nil, "run", "--sync", server.url(), "--listen", "",
		"--no-pty", "--grace", "5s", "--flush-timeout", "2m", "--", "sh", "-c", script)
	// The backend holds every request until the signal has gone out, so
	// all 2,000 files are still queued when it arrives.
	waitFor(t, func() bool { _, err := os.Stat(written); return err == nil })
	if err := sup.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sent := server.count(); sent != 0 {
		t.Errorf("%d files arrived before the signal through a held backend", sent)
	}
	close(gate)

	if code := sup.wait(t, 3*time.Minute); code != 143 {
		t.Errorf("exit status %d, want 143 (the child's death by SIGTERM)", code)
	}
	got, _ := server.snapshot()
	missing := 0
	for i := range files {
		if got[fmt.Sprintf("f%d.txt", i)] != fmt.Sprintf("file %d\n", i) {
			missing++
		}
	}
	if missing > 0 || len(got) != files {
		t.Errorf("backend holds %d files, %d of %d missing or wrong", len(got), missing, files)
	}
	if strings.Contains(sup.stderr.String(), "unsynced") {
		t.Errorf("the supervisor reports unsynced changes:\n%s", sup.stderr.String())
	}
}

// TestBackendDownAtStartIsReportedAndCaughtUp starts the supervisor with
// its HTTP backend away: /readyz says why, the child runs anyway, and the
// changes go out once the backend appears.
func TestBackendDownAtStartIsReportedAndCaughtUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	ws := t.TempDir()
	argv, release := holdScript(t, "echo early > early.txt")
	sup := startSupervisor(t, ws, nil, append([]string{"run", "--sync",
		"http://" + addr + "/files", "--listen", "127.0.0.1:0", "--no-pty", "--"}, argv...)...)
	metricsAddr := sup.metricsAddr(t)

	// The backend probe can answer before the start-up scan is done, so
	// the first 503 may name both. The scan must then finish without the
	// backend: wait for a 503 that names the backend alone (waitFor fails
	// the test if the scan keeps waiting).
	waitFor(t, func() bool {
		code, body := getEndpoint(t, metricsAddr, "/readyz")
		return code == http.StatusServiceUnavailable &&
			strings.Contains(body, "backend: unable to reach the backend") &&
			!strings.Contains(body, "startup_scan")
	})

	server := startSyncServer(t, addr, 0, nil)
	waitFor(t, func() bool { return server.count() == 1 })
	waitFor(t, func() bool {
		code, _ := getEndpoint(t, metricsAddr, "/readyz")
		return code == http.StatusOK
	})
	release()
	if code := sup.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if files, _ := server.snapshot(); files["early.txt"] != "early\n" {
		t.Errorf("backend holds %q, want early.txt", files)
	}
}

// TestExecBackendRunsThroughTheSupervisor syncs with an exec template that
// copies standard input into a mirror, so every command is started and
// reaped by the supervisor's reaper while the child runs.
func TestExecBackendRunsThroughTheSupervisor(t *testing.T) {
	ws, mirror := t.TempDir(), t.TempDir()
	template := `exec:sh -c 'mkdir -p "$(dirname "$1")" && cat > "$1"' upload ` +
		mirror + `/{path}`
	script := `echo one > 'semi;colon.txt'; mkdir -p 'd d'; echo two > 'd d/$(x).txt'; ` +
		`echo three > plain.txt`
	sup := startSupervisor(t, ws, nil, "run", "--sync", template, "--listen", "",
		"--no-pty", "--", "sh", "-c", script)
	if code := sup.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	skipState := func(rel string) bool { return rel == ".supervisor" }
	if diff := treeDiff(treeDigest(t, ws, skipState), treeDigest(t, mirror, nil)); diff != "" {
		t.Errorf("mirror differs from the workspace: %s", diff)
	}
}

// TestFlushTimeoutListsWhatIsLeftAndTheNextStartFinishesIt stops with a
// backend that never answers: the unsynced paths are listed on stderr, the
// exit status is the child's, and the next start sends them.
func TestFlushTimeoutListsWhatIsLeftAndTheNextStartFinishesIt(t *testing.T) {
	gate := make(chan struct{})
	stuck := startSyncServer(t, "127.0.0.1:0", 0, gate)
	t.Cleanup(func() { close(gate) })
	ws := t.TempDir()
	sup := startSupervisor(t, ws, nil, "run", "--sync", stuck.url(), "--listen", "",
		"--no-pty", "--flush-timeout", "1s", "--sync-timeout", "30s", "--",
		"sh", "-c", "for f in a b c; do echo $f > $f.txt; done; exit 3")
	if code := sup.wait(t, 30*time.Second); code != 3 {
		t.Errorf("exit status %d, want the child's 3", code)
	}
	for _, p := range []string{"a.txt", "b.txt", "c.txt"} {
		if !strings.Contains(sup.stderr.String(), "unsynced: path="+p) {
			t.Errorf("stderr does not list %s as unsynced:\n%s", p, sup.stderr.String())
		}
	}

	server := startSyncServer(t, "127.0.0.1:0", 0, nil)
	again := startSupervisor(t, ws, nil, "run", "--sync", server.url(), "--listen", "",
		"--no-pty", "--", "true")
	if code := again.wait(t, 30*time.Second); code != 0 {
		t.Errorf("second run: exit status %d, want 0", code)
	}
	files, _ := server.snapshot()
	if files["a.txt"] != "a\n" || files["b.txt"] != "b\n" || files["c.txt"] != "c\n" {
		t.Errorf("after the second run the backend holds %q, want a, b and c", files)
	}
}

func TestSyncTokenSources(t *testing.T) {
	dir := t.TempDir()
	file := func(content string) string {
		p := filepath.Join(dir, fmt.Sprintf("token-%d", len(content)))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name      string
		env       string
		file      string
		workspace string
		want      string
		wantErr   string
	}{
		{name: "none"},
		{name: "environment", env: "abc", want: "abc"},
		{name: "file with newline", file: file("from-file\n"), want: "from-file"},
		{name: "both", env: "abc", file: file("x"), wantErr: "use one"},
		{name: "empty file", file: file(""), wantErr: "empty"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "unable to read"},
		{name: "blank inside", env: "ab c", wantErr: "blank or control"},
		{name: "newline inside", file: file("a\nb"), wantErr: "blank or control"},
		{name: "file in the workspace", file: file("in-ws"), workspace: dir,
			wantErr: "inside the workspace"},
		{name: "file beside the workspace", file: file("beside"),
			workspace: filepath.Join(dir, "ws"), want: "beside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &runConfig{SyncTokenFile: tt.file, Workspace: tt.workspace}
			err := c.loadSyncToken(func(name string) string {
				if name == envSyncToken {
					return tt.env
				}
				return ""
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(c.syncToken) != tt.want {
				t.Errorf("token %q, %v; want %q", string(c.syncToken), err, tt.want)
			}
			if got := fmt.Sprintf("%v %s %#v", c.syncToken, c.syncToken, c.syncToken); tt.want != "" &&
				strings.Contains(got, tt.want) {
				t.Errorf("the token formats as %q", got)
			}
		})
	}
}
