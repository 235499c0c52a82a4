package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// supervisorBin is the binary under test, built once by TestMain (with the
// race detector when the tests run with it).
var supervisorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "supervisor-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	supervisorBin = filepath.Join(dir, "supervisor")
	args := []string{"build", "-o", supervisorBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "unable to build the supervisor:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// supervised is one `supervisor run` process started by a test.
type supervised struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr syncBuffer
	addr   chan string // receives the metrics address once it is logged
	done   chan struct{}
	code   int
}

// startSupervisor starts the binary with args in dir, with env added to a
// copy of the test's environment less every SUPERVISOR_ variable.
func startSupervisor(t *testing.T, dir string, env []string, args ...string) *supervised {
	t.Helper()
	return startSupervisorCommand(t, dir, env, supervisorBin, args...)
}

// startSupervisorCommand is startSupervisor for a command that runs the
// supervisor in its turn (unshare, the container's init script).
func startSupervisorCommand(t *testing.T, dir string, env []string, name string,
	args ...string) *supervised {
	t.Helper()
	return startProcess(t, dir, env, nil, name, args...)
}

// startProcess starts name with args; stdout nil collects the output in the
// returned supervised's stdout buffer.
func startProcess(t *testing.T, dir string, env []string, stdout io.Writer, name string,
	args ...string) *supervised {
	t.Helper()
	s := &supervised{addr: make(chan string, 1), done: make(chan struct{})}
	s.cmd = exec.Command(name, args...)
	s.cmd.Dir = dir
	// A race-enabled binary sleeps a second at exit by default; nothing
	// here needs that.
	s.cmd.Env = append(append(cleanEnv(), "GORACE=atexit_sleep_ms=0"), env...)
	s.cmd.Stdout = stdout
	if stdout == nil {
		s.cmd.Stdout = &s.stdout
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.readStderr(stderr)
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("supervisor stderr:\n%s", s.stderr.String())
		}
	})
	return s
}

var listenLine = regexp.MustCompile(`serving metrics and probes.*addr=(\S+)`)

func (s *supervised) readStderr(r io.Reader) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		s.stderr.WriteLine(line)
		if m := listenLine.FindStringSubmatch(line); m != nil {
			select {
			case s.addr <- m[1]:
			default:
			}
		}
	}
	_ = s.cmd.Wait()
	s.code = s.cmd.ProcessState.ExitCode()
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		s.code = 128 + int(ws.Signal())
	}
	close(s.done)
}

// wait returns the exit status, failing the test after timeout.
func (s *supervised) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(timeout):
		t.Fatalf("supervisor still running after %s", timeout)
		return -1
	}
}

// metricsAddr returns the address the supervisor serves /metrics on.
func (s *supervised) metricsAddr(t *testing.T) string {
	t.Helper()
	select {
	case addr := <-s.addr:
		s.addr <- addr
		return addr
	case <-time.After(20 * time.Second):
		t.Fatal("the supervisor never logged its metrics address")
		return ""
	}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SUPERVISOR_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer collects stderr lines from the reading goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
	b.buf.WriteByte('\n')
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scrape fetches /metrics and returns every sample keyed by its series as
// printed ("name{label=\"v\"}").
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	samples := map[string]float64{}
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad sample line %q", line)
		}
		samples[line[:cut]] = v
	}
	return samples
}

// treeDigest maps every regular file beneath root (less the paths skip
// accepts) to a digest of its content.
func treeDigest(t *testing.T, root string, skip func(rel string) bool) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if skip != nil && rel != "." && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = fmt.Sprintf("%x", sha256.Sum256(data))
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walk %s: %v", root, err)
	}
	return files
}

// treeDiff describes how mirror differs from want, or "" when it does not.
func treeDiff(want, mirror map[string]string) string {
	var b strings.Builder
	for p, h := range want {
		switch got, ok := mirror[p]; {
		case !ok:
			fmt.Fprintf(&b, "missing %s; ", p)
		case got != h:
			fmt.Fprintf(&b, "differs %s; ", p)
		}
	}
	for p := range mirror {
		if _, ok := want[p]; !ok {
			fmt.Fprintf(&b, "extra %s; ", p)
		}
	}
	return b.String()
}
