package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadyzIsUnavailableUntilTheStartupScanIsDone starts a supervisor on
// a workspace of 20,000 files, whose start-up scan takes a noticeable
// time, and probes it from the moment it listens: /readyz answers 503
// naming the start-up scan until the scan is done, then 200, and
// `supervisor health` agrees with it.
func TestReadyzIsUnavailableUntilTheStartupScanIsDone(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 files")
	}
	root := t.TempDir()
	ws := filepath.Join(root, "workspace")
	makeFiles(t, ws, "before", 20, 1000)
	sup, release := startHeld(t, ws, "--sync", "dir:"+filepath.Join(root, "mirror"),
		"--flush-timeout", "1s")
	addr := sup.metricsAddr(t)

	// The first answer comes while the scan runs: the watch of 20 directories
	// and the walk of 20,000 files take far longer than one request.
	code, body := readyz(t, addr)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "startup_scan: starting") {
		t.Fatalf("first /readyz: %d %q; want 503 naming startup_scan", code, body)
	}
	healthCode, healthOut := health(t, addr)
	if code, _ := readyz(t, addr); code == http.StatusServiceUnavailable {
		// Still unready after health answered, so health saw it unready too.
		if healthCode != 1 || !strings.Contains(healthOut, "startup_scan") {
			t.Errorf("health during the scan: exit %d %q; want 1 naming startup_scan",
				healthCode, healthOut)
		}
	} else {
		t.Logf("the scan ended while health ran; its answer proves nothing: %d %q",
			healthCode, healthOut)
	}

	// Every answer is 503 until the first 200, and that one comes only
	// after the scan has been logged as done.
	waitFor(t, func() bool {
		code, body := readyz(t, addr)
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d %q", code, body)
		}
		return code == http.StatusOK
	})
	waitFor(t, func() bool { return strings.Contains(sup.stderr.String(), "start-up scan done") })
	if !strings.Contains(sup.stderr.String(), "queued=20000") {
		t.Errorf("the start-up scan did not queue the 20,000 files:\n%s", sup.stderr.String())
	}
	if code, out := health(t, addr); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("health once ready: exit %d %q; want 0, ready", code, out)
	}

	release()
	sup.wait(t, time.Minute)
}

// backendFault is a backend a test can take away and give back.
type backendFault struct {
	name    string
	target  func(t *testing.T) string // the --sync value; called first
	lose    func(t *testing.T)
	restore func(t *testing.T)
	reason  string // what /readyz says while the backend is lost
}

// TestReadyzFollowsTheBackend starts a supervisor with its backend lost,
// gives the backend back and takes it away again: /readyz, `supervisor
// health` and supervisor_sync_backend_up follow each change within the
// probe's interval, for a dir: mirror whose directory cannot be created
// and for an http:// server on loopback that stops.
func TestReadyzFollowsTheBackend(t *testing.T) {
	for _, fault := range []backendFault{dirFault(), httpFault()} {
		t.Run(fault.name, func(t *testing.T) {
			ws := filepath.Join(t.TempDir(), "workspace")
			if err := os.MkdirAll(ws, 0o755); err != nil {
				t.Fatal(err)
			}
			target := fault.target(t)
			fault.lose(t)
			sup, release := startHeld(t, ws, "--sync", target)
			addr := sup.metricsAddr(t)

			expectBackendLost(t, addr, fault.reason, "backend lost at start")
			fault.restore(t)
			expectBackendUsable(t, addr)
			fault.lose(t)
			expectBackendLost(t, addr, fault.reason, "backend lost while running")

			release()
			sup.wait(t, time.Minute)
		})
	}
}

// dirFault loses a dir: mirror by putting a regular file where its parent
// directory should be.
func dirFault() backendFault {
	var parent string
	return backendFault{
		name: "dir",
		target: func(t *testing.T) string {
			parent = filepath.Join(t.TempDir(), "parent")
			return "dir:" + filepath.Join(parent, "mirror")
		},
		lose: func(t *testing.T) {
			if err := os.RemoveAll(parent); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(parent, []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		restore: func(t *testing.T) {
			if err := os.Remove(parent); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
		},
		reason: "unable to create mirror directory",
	}
}

// httpFault loses an http:// backend by stopping the loopback server that
// accepts everything, and restores it by serving on the same address again.
func httpFault() backendFault {
	var (
		addr string
		srv  *http.Server
	)
	accept := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	return backendFault{
		name: "http",
		target: func(t *testing.T) string {
			addr = freeLoopbackAddr(t)
			t.Cleanup(func() {
				if srv != nil {
					_ = srv.Close()
				}
			})
			return "http://" + addr + "/files"
		},
		lose: func(t *testing.T) {
			if srv != nil {
				if err := srv.Close(); err != nil {
					t.Fatal(err)
				}
				srv = nil
			}
		},
		restore: func(t *testing.T) {
			var l net.Listener
			waitFor(t, func() bool { // the port may linger for a moment
				var err error
				l, err = net.Listen("tcp", addr)
				return err == nil
			})
			srv = &http.Server{Handler: accept, ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = srv.Serve(l) }()
		},
		reason: "unable to reach the backend",
	}
}

// expectBackendLost waits until /readyz is 503 for the backend alone and
// checks that the reason, health and the gauges say so.
func expectBackendLost(t *testing.T, addr, reason, when string) {
	t.Helper()
	// The backend alone is unmet once the watcher and the scan are done and
	// a probe has run; probes run every backendCheckInterval (5 s), which
	// waitFor's 20 s covers.
	want := "not ready: backend: " + reason
	var body string
	waitFor(t, func() bool {
		var code int
		code, body = readyz(t, addr)
		return code == http.StatusServiceUnavailable && strings.HasPrefix(body, want) &&
			!strings.Contains(body, "startup_scan") && !strings.Contains(body, "watcher")
	})
	if strings.Count(body, "\n") != 1 {
		t.Errorf("%s: /readyz reason is not one line: %q", when, body)
	}
	if code, out := health(t, addr); code != 1 || !strings.Contains(out, "backend:") {
		t.Errorf("%s: health exit %d %q; want 1 naming the backend", when, code, out)
	}
	samples := scrape(t, addr)
	if samples["supervisor_sync_backend_up"] != 0 || samples["supervisor_ready"] != 0 {
		t.Errorf("%s: backend_up %v, ready %v; want 0 and 0", when,
			samples["supervisor_sync_backend_up"], samples["supervisor_ready"])
	}
}

// expectBackendUsable waits until /readyz is 200 and checks that health
// and the gauges agree.
func expectBackendUsable(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, func() bool {
		code, _ := readyz(t, addr)
		return code == http.StatusOK
	})
	if code, out := health(t, addr); code != 0 {
		t.Errorf("backend usable: health exit %d %q; want 0", code, out)
	}
	samples := scrape(t, addr)
	if samples["supervisor_sync_backend_up"] != 1 || samples["supervisor_ready"] != 1 {
		t.Errorf("backend usable: backend_up %v, ready %v; want 1 and 1",
			samples["supervisor_sync_backend_up"], samples["supervisor_ready"])
	}
}

// startHeld starts `supervisor run` in ws with a child that waits until
// release is called, listening on a free loopback port.
func startHeld(t *testing.T, ws string, args ...string) (*supervised, func()) {
	t.Helper()
	hold := filepath.Join(t.TempDir(), "hold")
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: this one runs after the supervisor's, so a
	// failed test does not leave the child waiting.
	t.Cleanup(func() { _ = os.Remove(hold) })
	args = append([]string{"run", "--listen", "127.0.0.1:0"}, args...)
	args = append(args, "--", "sh", "-c",
		fmt.Sprintf("while [ -e %q ]; do sleep 0.02; done", hold))
	sup := startSupervisor(t, ws, nil, args...)
	return sup, func() {
		if err := os.Remove(hold); err != nil {
			t.Error(err)
		}
	}
}

// makeFiles writes dirs*perDir small distinct files beneath root.
func makeFiles(t *testing.T, root, prefix string, dirs, perDir int) {
	t.Helper()
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("%s-%02d", prefix, d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range perDir {
			name := filepath.Join(dir, fmt.Sprintf("file-%05d.txt", f))
			if err := os.WriteFile(name, []byte(name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readyz returns the status and body of GET /readyz.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return resp.StatusCode, string(body)
}

// health runs `supervisor health` against addr and returns its exit status
// and combined output.
func health(t *testing.T, addr string) (int, string) {
	t.Helper()
	out, err := exec.Command(supervisorBin, "health", "--listen", addr).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("supervisor health: %v", err)
	return -1, ""
}

// TestJSONLogsGiveOneObjectPerLine runs a short child under --log-format
// json with a sync token in the environment, and reads stderr as an
// operator's log pipeline would: every line one JSON object; a start-up
// line with the configuration and without the token; one line for the
// child's start and one for its exit with the status.
func TestJSONLogsGiveOneObjectPerLine(t *testing.T) {
	root := t.TempDir()
	const token = "tok-3b1f9c-never-logged"
	sup := startSupervisor(t, root, []string{"SUPERVISOR_SYNC_TOKEN=" + token},
		"run", "--log-format", "json", "--listen", "", "--sync",
		"dir:"+filepath.Join(t.TempDir(), "mirror"), "--", "sh", "-c", "exit 3")
	if code := sup.wait(t, 30*time.Second); code != 3 {
		t.Errorf("exit status %d, want the child's 3", code)
	}

	stderr := sup.stderr.String()
	if strings.Contains(stderr, token) {
		t.Errorf("the sync token appears in the logs:\n%s", stderr)
	}
	byMessage := map[string][]map[string]any{}
	for i, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("stderr line %d is not a JSON object: %v: %q", i+1, err, line)
			continue
		}
		msg, _ := entry["@message"].(string)
		byMessage[msg] = append(byMessage[msg], entry)
	}

	for _, tc := range []struct {
		message string
		keys    []string
	}{
		{"starting", []string{"version", "workspace", "sync", "state_dir", "debounce_ms",
			"grace_ms", "flush_timeout_ms", "sync_concurrency", "max_file_size_bytes"}},
		{"child started", []string{"pid", "argv0"}},
		{"child exited", []string{"pid", "exit_code", "duration_ms"}},
	} {
		entries := byMessage[tc.message]
		if len(entries) != 1 {
			t.Errorf("%d %q lines, want one", len(entries), tc.message)
			continue
		}
		for _, k := range tc.keys {
			if _, ok := entries[0][k]; !ok {
				t.Errorf("%q line lacks %s: %v", tc.message, k, entries[0])
			}
		}
	}
	if exited := byMessage["child exited"]; len(exited) == 1 && exited[0]["exit_code"] != 3.0 {
		t.Errorf("child exited with exit_code %v, want 3", exited[0]["exit_code"])
	}
}
