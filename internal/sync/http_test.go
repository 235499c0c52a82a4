package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// fault is one scripted misbehaviour of faultServer for a request.
type fault struct {
	status     int    // answer with this status
	retryAfter string // and this Retry-After
	hang       bool   // read the body, then never answer
	reset      bool   // drop the connection with a TCP reset
}

// retryable says whether the supervisor must retry after this fault.
func (f fault) retryable() bool {
	return f.hang || f.reset || f.status == 408 || f.status == 425 || f.status == 429 ||
		f.status >= 500
}

// faultServer implements the server side of docs/sync-protocol.md in
// memory, misbehaves as scripted per path, and fails the test when the
// supervisor breaks the protocol: two requests for one path at once, a
// sequence that goes backwards, a body that does not match its digest or
// length, a missing token, a path not escaped as specified.
type faultServer struct {
	t     *testing.T
	srv   *httptest.Server
	token string
	delay time.Duration // added to every request: a slow backend

	mu        stdsync.Mutex
	faults    map[string][]fault
	files     map[string][]byte
	modes     map[string]string
	busy      map[string]bool
	lastSeq   map[string]uint64
	requests  map[string][]time.Time
	injected  int // retryable faults served
	inFlight  int
	maxFlight int
}

func newFaultServer(t *testing.T, token string) *faultServer {
	s := &faultServer{
		t: t, token: token,
		faults: map[string][]fault{}, files: map[string][]byte{}, modes: map[string]string{},
		busy: map[string]bool{}, lastSeq: map[string]uint64{}, requests: map[string][]time.Time{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *faultServer) base() string { return s.srv.URL + "/base" }

// script sets the faults for path's next requests, in order.
func (s *faultServer) script(path string, faults ...fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = faults
}

func (s *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/base/")
	if !ok || r.Method == http.MethodHead {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if want := "/base/" + EscapePath(path); r.URL.EscapedPath() != want {
		s.t.Errorf("request path %s, want %s", r.URL.EscapedPath(), want)
	}
	want := ""
	if s.token != "" {
		want = "Bearer " + s.token
	}
	if got := r.Header.Get("Authorization"); got != want {
		s.t.Errorf("%s %s: Authorization %q, want the bearer token", r.Method, path, got)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f, seqOK := s.enter(path, r.Header.Get(HeaderSequence))
	defer s.leave(path)
	if !seqOK {
		s.t.Errorf("%s %s: %s %q does not grow", r.Method, path, HeaderSequence,
			r.Header.Get(HeaderSequence))
	}
	time.Sleep(s.delay)

	switch {
	case f == nil:
		s.apply(w, r, path)
	case f.hang:
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	case f.reset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			s.t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.(*net.TCPConn).SetLinger(0)
		_ = conn.Close()
	default:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.WriteHeader(f.status)
		_, _ = fmt.Fprintf(w, "scripted %d\n", f.status)
	}
}

// enter records the request and pops its fault; it reports whether the
// sequence number grew.
func (s *faultServer) enter(path, seqHeader string) (*fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[path] {
		s.t.Errorf("two requests for %q at once", path)
	}
	s.busy[path] = true
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
	s.requests[path] = append(s.requests[path], time.Now())

	seq, err := strconv.ParseUint(seqHeader, 10, 64)
	seqOK := err == nil && seq > s.lastSeq[path]
	s.lastSeq[path] = seq

	if len(s.faults[path]) == 0 {
		return nil, seqOK
	}
	f := s.faults[path][0]
	s.faults[path] = s.faults[path][1:]
	if f.retryable() {
		s.injected++
	}
	return &f, seqOK
}

func (s *faultServer) leave(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy[path] = false
	s.inFlight--
}

// apply performs a well-formed PUT or DELETE.
func (s *faultServer) apply(w http.ResponseWriter, r *http.Request, path string) {
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the client gave up: store nothing
		}
		if int64(len(body)) != r.ContentLength {
			s.t.Errorf("PUT %s: %d bytes, Content-Length %d", path, len(body), r.ContentLength)
		}
		if got, want := r.Header.Get("Content-Digest"), ContentDigest(sha256.Sum256(body)); got != want {
			s.t.Errorf("PUT %s: Content-Digest %q, body digest %q", path, got, want)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.files[path] = body
		s.modes[path] = r.Header.Get(HeaderFileMode)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		s.mu.Lock()
		_, held := s.files[path]
		delete(s.files, path)
		s.mu.Unlock()
		if !held {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *faultServer) tree() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for p, b := range s.files {
		out[p] = string(b)
	}
	return out
}

func (s *faultServer) requestTimes(path string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requests[path]...)
}

// newTestHTTPBackend returns a backend for s whose idle connections are
// closed with the test.
func newTestHTTPBackend(t *testing.T, s *faultServer, timeout time.Duration,
	log hclog.Logger) *HTTPBackend {
	t.Helper()
	h, err := NewHTTPBackend(s.base(), TargetOptions{Token: s.token, Timeout: timeout, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.client.CloseIdleConnections)
	return h
}

func withBackend(b Backend) fixtureOption { return func(c *Config) { c.Backend = b } }

// withRetries sets the backoff bounds. The floor stays well above the time
// the test server takes to notice a connection the client dropped after a
// timeout, so that the retry cannot overlap the abandoned request.
func withRetries(floor, ceiling time.Duration) fixtureOption {
	return func(c *Config) { c.RetryMin, c.RetryMax = floor, ceiling }
}

func (f *fixture) flushExpectingFailure(wantErr error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := f.queue.Flush(ctx)
	if !errors.Is(err, wantErr) || errors.Is(err, context.DeadlineExceeded) {
		f.t.Fatalf("Flush = %v, want %v (pending %v)", err, wantErr, f.queue.Pending())
	}
}

func TestHTTPBackendDeliversEveryFileThroughInjectedFaults(t *testing.T) {
	server := newFaultServer(t, "test-token")
	backend := newTestHTTPBackend(t, server, 300*time.Millisecond, nil)
	f := newFixture(t, withBackend(backend), withRetries(100*time.Millisecond, time.Second))

	faults := map[string][]fault{
		"unavailable.txt":   {{status: 503}, {status: 503}, {status: 503}},
		"busy/limited.txt":  {{status: 429, retryAfter: "1"}},
		"slow/hang.txt":     {{hang: true}},
		"reset.txt":         {{reset: true}},
		"gateway.txt":       {{status: 502}, {status: 408}},
		"rejected.txt":      {{status: 400}},
		"odd/sp ace;#?%.md": {{status: 500}},
	}
	want := map[string]string{}
	for i := range 20 {
		want[fmt.Sprintf("plain/%02d.txt", i)] = strings.Repeat(fmt.Sprintf("line %d\n", i), i*100)
	}
	for p := range faults {
		want[p] = "content of " + p
	}
	want["empty.txt"] = ""
	for p, faults := range faults {
		server.script(p, faults...)
	}
	f.start()
	for p, content := range want {
		f.write(p, content)
		f.hint(change.SourceAgent, p)
	}
	f.flushExpectingFailure(ErrUnsynced)

	// Everything arrived byte for byte but the file the server rejected.
	delete(want, "rejected.txt")
	if diff := treeDiffStrings(want, server.tree()); diff != "" {
		t.Errorf("backend differs from the workspace: %s", diff)
	}
	injected := server.injected
	if got := testutil.ToFloat64(f.metrics.SyncRetries); got != float64(injected) {
		t.Errorf("retries counted %v, want one per retryable fault (%d)", got, injected)
	}
	status := f.queue.Status()
	if len(status.Failed) != 1 || status.Failed[0].Path != "rejected.txt" ||
		!status.Failed[0].Permanent || !strings.Contains(status.Failed[0].Reason, "400") {
		t.Errorf("failed paths %+v, want rejected.txt failed permanently with its 400", status.Failed)
	}

	// The server asked for a second's pause on busy/limited.txt.
	if times := server.requestTimes("busy/limited.txt"); len(times) != 2 ||
		times[1].Sub(times[0]) < time.Second {
		t.Errorf("requests for busy/limited.txt at %v, want a retry 1s after the 429", times)
	}

	// The rejected content is not sent again, not even for a new hint...
	f.hint(change.SourceAgent, "rejected.txt")
	f.flushExpectingFailure(ErrUnsynced)
	if n := len(server.requestTimes("rejected.txt")); n != 1 {
		t.Errorf("rejected.txt sent %d times, want once", n)
	}
	// ...but new content is.
	f.write("rejected.txt", "fixed")
	f.hint(change.SourceAgent, "rejected.txt")
	f.flush()
	if got := server.tree()["rejected.txt"]; got != "fixed" {
		t.Errorf("rejected.txt holds %q after the fix, want %q", got, "fixed")
	}
}

func TestHTTPBackendKeepsEachPathInOrderBehindASlowServer(t *testing.T) {
	server := newFaultServer(t, "")
	server.delay = 5 * time.Millisecond
	backend := newTestHTTPBackend(t, server, 5*time.Second, nil)
	f := newFixture(t, withBackend(backend))
	f.start()

	// One path written 50 times, as fast as the agent can; another put and
	// then deleted; a crowd of others to keep every worker busy.
	for i := range 20 {
		p := fmt.Sprintf("crowd/%02d.txt", i)
		f.write(p, p)
		f.hint(change.SourceAgent, p)
	}
	for i := range 50 {
		f.write("hot.txt", fmt.Sprintf("version %d", i))
		f.hint(change.SourceAgent, "hot.txt")
		if i == 10 {
			f.write("gone.txt", "short-lived")
			f.hint(change.SourceAgent, "gone.txt")
		}
		if i == 11 {
			if err := os.Remove(filepath.Join(f.workspace, "gone.txt")); err != nil {
				t.Fatal(err)
			}
			f.hint(change.SourceAgent, "gone.txt")
		}
	}
	f.flush()

	got := server.tree()
	if got["hot.txt"] != "version 49" {
		t.Errorf("hot.txt holds %q, want the last version", got["hot.txt"])
	}
	if _, ok := got["gone.txt"]; ok {
		t.Error("gone.txt is on the server: an older put overtook its delete")
	}
	if server.maxFlight > DefaultConcurrency {
		t.Errorf("%d requests in flight at once, want at most %d", server.maxFlight,
			DefaultConcurrency)
	}
	if server.maxFlight < 2 {
		t.Errorf("at most %d request in flight: paths were not sent concurrently",
			server.maxFlight)
	}
}

func TestHTTPBackendCutsShortABodyThatNoLongerMatchesItsDigest(t *testing.T) {
	server := newFaultServer(t, "")
	backend := newTestHTTPBackend(t, server, 5*time.Second, nil)
	content := strings.Repeat("x", 256<<10)
	stale := &digestedReader{Reader: strings.NewReader(content),
		sum: sha256.Sum256([]byte("what the file held when hashed"))}

	err := backend.Put(context.Background(), "a.txt", stale, int64(len(content)), 0o644)
	if !errors.Is(err, errChangedWhileSent) {
		t.Errorf("Put = %v, want %v", err, errChangedWhileSent)
	}
	if _, ok := server.tree()["a.txt"]; ok {
		t.Error("the server stored a body whose digest does not match")
	}
}

type digestedReader struct {
	io.Reader
	sum [32]byte
}

func (d *digestedReader) SHA256() [32]byte { return d.sum }

func TestHTTPBackendClassifiesAnswers(t *testing.T) {
	tests := []struct {
		op         string
		status     int
		retryAfter string
		want       string // "ok", "retry" or "permanent"
		wantDelay  time.Duration
	}{
		{"put", 200, "", "ok", 0},
		{"put", 201, "", "ok", 0},
		{"put", 204, "", "ok", 0},
		{"delete", 204, "", "ok", 0},
		{"delete", 404, "", "ok", 0},
		{"put", 404, "", "permanent", 0},
		{"put", 400, "", "permanent", 0},
		{"put", 401, "", "permanent", 0},
		{"put", 403, "", "permanent", 0},
		{"put", 413, "", "permanent", 0},
		{"put", 301, "", "permanent", 0},
		{"put", 408, "", "retry", 0},
		{"put", 425, "", "retry", 0},
		{"put", 429, "7", "retry", 7 * time.Second},
		{"delete", 500, "", "retry", 0},
		{"put", 503, "120", "retry", 2 * time.Minute},
		{"put", 503, "soon", "retry", 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%d/%s", tt.op, tt.status, tt.retryAfter)
		resp := &http.Response{StatusCode: tt.status, Status: strconv.Itoa(tt.status),
			Header: http.Header{}}
		if tt.retryAfter != "" {
			resp.Header.Set("Retry-After", tt.retryAfter)
		}
		err := classify(tt.op, "a.txt", resp, []byte("details"))
		var later *RetryAfterError
		got := "retry"
		switch {
		case err == nil:
			got = "ok"
		case errors.Is(err, ErrPermanent):
			got = "permanent"
		}
		if got != tt.want {
			t.Errorf("%s: %v, want %s", name, err, tt.want)
		}
		if errors.As(err, &later) != (tt.wantDelay > 0) ||
			(later != nil && later.Delay != tt.wantDelay) {
			t.Errorf("%s: %v, want a retry after %s", name, err, tt.wantDelay)
		}
	}
}

func TestParseRetryAfterReadsSecondsAndDates(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{" 30 ", 30 * time.Second, true},
		{"Fri, 01 May 2026 12:00:45 GMT", 45 * time.Second, true},
		{"Fri, 01 May 2026 11:00:00 GMT", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"tomorrow", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.value, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok,
				tt.want, tt.wantOK)
		}
	}
}

func TestEscapePathKeepsOnlyUnreservedBytes(t *testing.T) {
	tests := map[string]string{
		"a/b-c_d.e~f.txt":   "a/b-c_d.e~f.txt",
		"sp ace/x.txt":      "sp%20ace/x.txt",
		"q?h#p%;=+&@$.txt":  "q%3Fh%23p%25%3B%3D%2B%26%40%24.txt",
		"ü.txt":             "%C3%BC.txt",
		"it's \"q\".txt":    "it%27s%20%22q%22.txt",
		"$(touch x)`y`.txt": "%24%28touch%20x%29%60y%60.txt",
	}
	for in, want := range tests {
		if got := EscapePath(in); got != want {
			t.Errorf("EscapePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewHTTPBackendRejectsURLsTheProtocolCannotUse(t *testing.T) {
	tests := []struct {
		target  string
		wantErr string // "" for success
	}{
		{"http://127.0.0.1:8080/files", ""},
		{"https://sync.example/base/", ""},
		{"http://user:secret@127.0.0.1/files", "SUPERVISOR_SYNC_TOKEN"},
		{"http://127.0.0.1/files?x=1", "query"},
		{"http:///files", "no host"},
	}
	for _, tt := range tests {
		_, err := OpenTarget(tt.target, TargetOptions{})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("OpenTarget(%q) = %v, want success", tt.target, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("OpenTarget(%q) = %v, want an error about %q", tt.target, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("OpenTarget(%q) error quotes the password: %v", tt.target, err)
		}
	}
}

func TestHTTPBackendCheckReportsWhyTheServerIsUnusable(t *testing.T) {
	answer := http.StatusNotFound
	var mu stdsync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(answer)
	}))
	defer srv.Close()
	h, err := NewHTTPBackend(srv.URL, TargetOptions{Token: "t", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.client.CloseIdleConnections()

	for _, tt := range []struct {
		status  int
		wantErr string
	}{
		{http.StatusNotFound, ""},
		{http.StatusNoContent, ""},
		{http.StatusUnauthorized, "refused the token"},
		{http.StatusServiceUnavailable, "503"},
	} {
		mu.Lock()
		answer = tt.status
		mu.Unlock()
		err := h.Check(context.Background())
		if (tt.wantErr == "") != (err == nil) ||
			(err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Check with %d = %v, want %q", tt.status, err, tt.wantErr)
		}
	}

	srv.Close()
	if err := h.Check(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "unable to reach") {
		t.Errorf("Check with the server gone = %v, want unable to reach", err)
	}
}

func TestHTTPBackendNeverLogsTheToken(t *testing.T) {
	const token = "tok-5ecr3t-value"
	server := newFaultServer(t, token)
	server.script("a.txt", fault{status: 500}, fault{status: 403})
	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs})
	backend := newTestHTTPBackend(t, server, time.Second, log)
	f := newFixture(t, withBackend(backend), func(c *Config) { c.Logger = log })
	f.start()
	f.write("a.txt", "a")
	f.hint(change.SourceAgent, "a.txt")
	f.flushExpectingFailure(ErrUnsynced)

	if n := len(server.requestTimes("a.txt")); n != 2 {
		t.Fatalf("server saw %d requests, want 2 (a 500, then a 403)", n)
	}
	if !strings.Contains(logs.String(), "403") {
		t.Errorf("the failure is not logged:\n%s", logs.String())
	}
	status := fmt.Sprintf("%+v", f.queue.Status())
	for name, text := range map[string]string{"logs": logs.String(), "status": status} {
		if strings.Contains(text, token) {
			t.Errorf("the token appears in the %s:\n%s", name, text)
		}
	}
}

// treeDiffStrings describes how got differs from want, or "" when it does
// not.
func treeDiffStrings(want, got map[string]string) string {
	var b strings.Builder
	for p, w := range want {
		switch g, ok := got[p]; {
		case !ok:
			fmt.Fprintf(&b, "missing %q; ", p)
		case g != w:
			fmt.Fprintf(&b, "%q holds %d bytes, want %d; ", p, len(g), len(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			fmt.Fprintf(&b, "extra %q; ", p)
		}
	}
	return b.String()
}
