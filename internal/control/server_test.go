package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeStarter records requests and hands the runs to the test, which
// plays the part of the run.
type fakeStarter struct {
	mu   sync.Mutex
	reqs []StartRequest
	runs chan *Run
	err  error
}

func newFakeStarter() *fakeStarter { return &fakeStarter{runs: make(chan *Run, 8)} }

func (f *fakeStarter) Start(req StartRequest, run *Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.reqs = append(f.reqs, req)
	run.Started()
	f.runs <- run
	return nil
}

func (f *fakeStarter) next(t *testing.T) *Run {
	t.Helper()
	select {
	case r := <-f.runs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no run was started")
		return nil
	}
}

// daemon is a Server on a unix socket in a test directory.
type daemon struct {
	server  *Server
	starter *fakeStarter
	socket  string
	logs    *syncBuffer
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	d := &daemon{starter: newFakeStarter(), logs: &syncBuffer{}}
	d.server = &Server{Starter: d.starter, Version: "test", BufferBytes: 1 << 20,
		Logger: hclog.New(&hclog.LoggerOptions{Output: d.logs, Level: hclog.Debug})}
	d.socket = filepath.Join(t.TempDir(), "control.sock")
	l, err := ListenUnix(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.server.ServeUnix(l) }()
	t.Cleanup(func() {
		d.server.Shutdown(context.Background())
		if err := <-served; err != nil {
			t.Errorf("ServeUnix: %v", err)
		}
	})
	return d
}

// serveTCP serves the same daemon on loopback TCP with a token.
func (d *daemon) serveTCP(t *testing.T, token string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.server.ServeTCP(l, token) }()
	return l.Addr().String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestTCPRequestsWithoutTheTokenAreRefusedAndLoggedWithoutTheirBody(t *testing.T) {
	d := startDaemon(t)
	addr := d.serveTCP(t, "s3cret-token")
	const secretInBody = "sk-ant-do-not-log-me"
	body := fmt.Sprintf(`{"argv":["claude"],"env":{"ANTHROPIC_API_KEY":%q}}`, secretInBody)

	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer wrong", http.StatusUnauthorized},
		{"token without the scheme", "s3cret-token", http.StatusUnauthorized},
		{"a longer token", "Bearer s3cret-token-and-more", http.StatusUnauthorized},
		{"right token", "Bearer s3cret-token", http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost,
				"http://"+addr+"/v1/runs", strings.NewReader(body))
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized &&
				resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
	if got := len(d.starter.reqs); got != 1 {
		t.Errorf("%d runs started, want 1 (the authorized request only)", got)
	}
	logs := d.logs.String()
	if strings.Count(logs, "unauthorized control request") != 4 {
		t.Errorf("want 4 refusals logged, logs:\n%s", logs)
	}
	for _, secret := range []string{secretInBody, "s3cret-token", "wrong"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestTCPClientSendsTheToken(t *testing.T) {
	d := startDaemon(t)
	addr := d.serveTCP(t, "tok")
	if _, err := NewTCPClient(addr, "tok").Ping(ctx(t)); err != nil {
		t.Fatalf("Ping with the token: %v", err)
	}
	_, err := NewTCPClient(addr, "bad").Ping(ctx(t))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Ping with a wrong token: %v, want ErrUnauthorized", err)
	}
}

func TestServeTCPRefusesAnEmptyToken(t *testing.T) {
	s := &Server{Starter: newFakeStarter()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	if err := s.ServeTCP(l, ""); err == nil {
		t.Fatal("ServeTCP with an empty token served")
	}
}

func TestUnixSocketAdmitsOnlyItsOwner(t *testing.T) {
	d := startDaemon(t)
	info, err := os.Stat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
	st := info.Sys().(*syscall.Stat_t)
	if int(st.Uid) != os.Getuid() {
		t.Errorf("socket owned by uid %d, want %d", st.Uid, os.Getuid())
	}
	if _, err := NewUnixClient(d.socket).Ping(ctx(t)); err != nil {
		t.Fatalf("the owner cannot use the socket: %v", err)
	}
}

// TestUnixSocketIsNotAccessibleToAnotherUID connects from a process
// running as nobody. Only root can start one, so the test needs root.
func TestUnixSocketIsNotAccessibleToAnotherUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a process as another uid")
	}
	d := startDaemon(t)
	// Let every user through the socket's directories, so that only the
	// socket's own permissions stand in the way.
	for dir := filepath.Dir(d.socket); dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helper := copyTestBinary(t)
	cmd := exec.Command(helper, "-test.run=^TestHelperConnect$")
	cmd.Env = append(os.Environ(), "CONTROL_HELPER_SOCKET="+d.socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "connect: permission denied") {
		t.Fatalf("uid 65534 was not refused by the socket's permissions:\n%s", out)
	}
}

// TestHelperConnect is the other user's side of the test above.
func TestHelperConnect(t *testing.T) {
	socket := os.Getenv("CONTROL_HELPER_SOCKET")
	if socket == "" {
		t.Skip("only run as a helper")
	}
	_, err := NewUnixClient(socket).Ping(context.Background())
	fmt.Printf("uid %d: %v\n", os.Getuid(), err)
}

// copyTestBinary puts the test binary where another user can run it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "control-helper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestListenUnixReplacesAStaleSocketButNotALiveOne(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")

	// A socket left by a daemon that died: nobody answers.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()

	live, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	defer func() { _ = live.Close() }()
	if _, err := ListenUnix(path); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("ListenUnix over a live socket: %v, want ErrSocketInUse", err)
	}
	_ = live.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket behind: %v", err)
	}
}

func TestSecondRunWhileOneIsInProgressIsRefusedAsBusy(t *testing.T) {
	d := startDaemon(t)
	c := NewUnixClient(d.socket)
	first, err := c.Start(ctx(t), StartRequest{Argv: []string{"/bin/agent", "one"}})
	if err != nil {
		t.Fatal(err)
	}
	run := d.starter.next(t)

	_, err = c.Start(ctx(t), StartRequest{Argv: []string{"/bin/agent", "two"}})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.RunID != first.ID || !errors.Is(err, ErrBusy) {
		t.Fatalf("second Start: %v, want a BusyError naming %s", err, first.ID)
	}
	if p, _ := c.Ping(ctx(t)); p.Busy != first.ID {
		t.Errorf("ping says busy=%q, want %q", p.Busy, first.ID)
	}

	// Once the first run is over, the next one is taken.
	run.Finish(3, nil)
	info, err := c.Run(ctx(t), first.ID)
	if err != nil || info.State != StateExited || info.ExitCode == nil || *info.ExitCode != 3 {
		t.Fatalf("first run after Finish: %+v, %v; want exited with 3", info, err)
	}
	if _, err := c.Start(ctx(t), StartRequest{Argv: []string{"/bin/agent", "two"}}); err != nil {
		t.Fatalf("Start after the first run ended: %v", err)
	}
}

func TestStartErrorsReachTheClientAsSentinels(t *testing.T) {
	d := startDaemon(t)
	c := NewUnixClient(d.socket)
	if _, err := c.Start(ctx(t), StartRequest{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Start without argv: %v, want ErrInvalid", err)
	}
	d.starter.err = fmt.Errorf("%w: --sync is required", ErrInvalid)
	if _, err := c.Start(ctx(t), StartRequest{Argv: []string{"x"}}); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "--sync is required") {
		t.Errorf("Start refused by the starter: %v, want ErrInvalid with its message", err)
	}
	// A refused start leaves the daemon free.
	d.starter.err = nil
	if _, err := c.Start(ctx(t), StartRequest{Argv: []string{"x"}}); err != nil {
		t.Errorf("Start after a refused one: %v", err)
	}
	if _, err := c.Run(ctx(t), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run of an unknown id: %v, want ErrNotFound", err)
	}
}

func TestSignalsAndStopReachTheRun(t *testing.T) {
	d := startDaemon(t)
	c := NewUnixClient(d.socket)
	info, err := c.Start(ctx(t), StartRequest{Argv: []string{"agent"}})
	if err != nil {
		t.Fatal(err)
	}
	run := d.starter.next(t)
	if err := c.Signal(ctx(t), info.ID, "INT"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx(t), info.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx(t), info.ID, "SIGKILL"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SIGKILL: %v, want ErrInvalid (not a forwarded signal)", err)
	}
	for _, want := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		select {
		case got := <-run.Signals():
			if got != want {
				t.Errorf("run got %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("run never got %v", want)
		}
	}
	run.Finish(130, nil)
	if err := c.Stop(ctx(t), info.ID); !errors.Is(err, ErrFinished) {
		t.Errorf("Stop after the end: %v, want ErrFinished", err)
	}
}

func TestEventStreamDeliversEveryEventInOrderAndResumes(t *testing.T) {
	d := startDaemon(t)
	c := NewUnixClient(d.socket)
	info, err := c.Start(ctx(t), StartRequest{Argv: []string{"agent"}})
	if err != nil {
		t.Fatal(err)
	}
	run := d.starter.next(t)
	lines := NewLineWriter(run.Events())

	// A reader that stops after the second event, while the run goes on.
	_, _ = lines.Write([]byte("{\"n\":1}\n{\"n\":2}\n"))
	stop := errors.New("stop reading")
	var first []string
	last, err := c.Events(ctx(t), info.ID, 0, func(e Event) error {
		first = append(first, fmt.Sprintf("%d %s %s", e.ID, e.Type, e.Data))
		if e.ID == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || last != 2 {
		t.Fatalf("first read: last=%d err=%v", last, err)
	}

	// More events, some while the second reader waits.
	run.Events().AppendJSON(EventSynced, SyncedData{Op: "put", Path: "a.txt", Bytes: 3})
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = lines.Write([]byte("{\"n\":3}\n"))
		run.Finish(0, nil)
	}()
	var rest []string
	last, err = c.Events(ctx(t), info.ID, last, func(e Event) error {
		rest = append(rest, fmt.Sprintf("%d %s %s", e.ID, e.Type, e.Data))
		return nil
	})
	if err != nil {
		t.Fatalf("resumed read: %v", err)
	}
	want := []string{
		`1 line {"n":1}`, `2 line {"n":2}`,
		`3 synced {"op":"put","path":"a.txt","bytes":3}`, `4 line {"n":3}`,
		`5 exit {"exit_code":0}`,
	}
	if got := append(first, rest...); fmt.Sprint(got) != fmt.Sprint(want) || last != 5 {
		t.Fatalf("events %q (last %d)\nwant   %q", got, last, want)
	}

	// A finished run's stream can still be read from the start.
	var again int
	if _, err := c.Events(ctx(t), info.ID, 0, func(Event) error { again++; return nil }); err != nil ||
		again != len(want) {
		t.Errorf("re-read of a finished run: %d events, %v", again, err)
	}
}

func TestEventStreamReportsAGapWhenTheReaderFellBehind(t *testing.T) {
	d := startDaemon(t)
	d.server.BufferBytes = 8
	c := NewUnixClient(d.socket)
	info, err := c.Start(ctx(t), StartRequest{Argv: []string{"agent"}})
	if err != nil {
		t.Fatal(err)
	}
	run := d.starter.next(t)
	for _, s := range []string{"aaaa", "bbbb", "cccc"} {
		run.Events().Append(EventLine, []byte(s))
	}
	run.Finish(0, nil)
	var got []string
	if _, err := c.Events(ctx(t), info.ID, 0, func(e Event) error {
		got = append(got, fmt.Sprintf("%d %s %s", e.ID, e.Type, e.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The exit event's data alone is over the 8 bytes: the three lines
	// before it are reported as missed.
	want := []string{`0 gap {"missed":3}`, `4 exit {"exit_code":0}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}
