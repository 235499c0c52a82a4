package control

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Starter carries out runs for the Server.
type Starter interface {
	// Start checks req, builds the run and starts it in the background,
	// reporting through run (Observe, Started, and Finish when it is over).
	// An error means nothing was started; one wrapping ErrInvalid is the
	// request's fault. Start must not call Finish before it returns.
	Start(req StartRequest, run *Run) error
}

// keepRuns is how many finished runs the daemon remembers for GET and for
// streams that resume late; older ones answer 404.
const keepRuns = 8

// keepAlive is how often an idle event stream gets a comment line, so that
// proxies and load balancers do not close it.
const keepAlive = 15 * time.Second

// maxRequestBytes bounds a request body (a prompt in argv can be long).
const maxRequestBytes = 4 << 20

// Server answers the control API. Its zero value is not usable: Starter is
// required.
type Server struct {
	// Starter carries out the runs. Required.
	Starter Starter
	// Version is reported by /v1/ping.
	Version string
	// BufferBytes bounds each run's event buffer; zero means
	// DefaultBufferBytes.
	BufferBytes int
	// Logger receives request logs; nil discards them.
	Logger hclog.Logger

	mu      sync.Mutex
	runs    []*Run // oldest first; at most keepRuns finished ones
	active  *Run   // the run not yet finished, or nil
	started int

	servers []*http.Server
	ctx     context.Context // cancelled by Shutdown; ends event streams
	cancel  context.CancelFunc
	once    sync.Once
}

func (s *Server) init() {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		if s.Logger == nil {
			s.Logger = hclog.NewNullLogger()
		}
	})
}

// Handler returns the API's routes without any authentication; ServeUnix
// and ServeTCP put theirs in front of it.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	p := "/" + APIVersion
	mux.HandleFunc("GET "+p+"/ping", s.servePing)
	mux.HandleFunc("POST "+p+"/runs", s.serveStart)
	mux.HandleFunc("GET "+p+"/runs", s.serveList)
	mux.HandleFunc("GET "+p+"/runs/{id}", s.serveRun)
	mux.HandleFunc("GET "+p+"/runs/{id}/events", s.serveEvents)
	mux.HandleFunc("POST "+p+"/runs/{id}/signal", s.serveSignal)
	mux.HandleFunc("POST "+p+"/runs/{id}/stop", s.serveStop)
	return mux
}

// Busy returns the ID of the run in progress, or "".
func (s *Server) Busy() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && !s.active.finished() {
		return s.active.id
	}
	return ""
}

// ServeUnix answers requests on l, a listener from ListenUnix, from peers
// running as the daemon's own user or as root; others get 403. It returns
// nil after Shutdown.
func (s *Server) ServeUnix(l net.Listener) error {
	return s.serve(l, s.checkPeer(s.Handler()))
}

// ServeTCP answers requests on l that carry token as a bearer token;
// others get 401. The token must not be empty.
func (s *Server) ServeTCP(l net.Listener, token string) error {
	if token == "" {
		return errors.New("unable to serve the control API on TCP: no token")
	}
	return s.serve(l, s.checkToken(token, s.Handler()))
}

func (s *Server) serve(l net.Listener, h http.Handler) error {
	s.init()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ConnContext:       withPeer,
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("unable to serve the control API: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests, lets streams of finished runs send
// their last events until ctx expires, then ends every stream. The runs
// themselves are not touched.
func (s *Server) Shutdown(ctx context.Context) {
	s.init()
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	for _, srv := range servers {
		_ = srv.Shutdown(ctx)
	}
	s.cancel()
	for _, srv := range servers {
		_ = srv.Close()
	}
}

// start registers a run and hands it to the Starter, refusing while
// another run is in progress.
func (s *Server) start(req StartRequest) (*Run, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, fmt.Errorf("%w: argv is empty", ErrInvalid)
	}
	s.mu.Lock()
	if s.active != nil && !s.active.finished() {
		busy := s.active.id
		s.mu.Unlock()
		return nil, &BusyError{RunID: busy}
	}
	s.started++
	run := newRun(newRunID(s.started), req.Argv, NewBuffer(s.BufferBytes), time.Now())
	// The run is listed at once, not after Starter.Start: from here on
	// Ping and a refused start name it, and a client that got its ID
	// there must be able to look it up, stop it or signal it (the signals
	// wait in the run until it is set up).
	s.active = run
	s.runs = append(s.runs, run)
	s.mu.Unlock()

	if err := s.Starter.Start(req, run); err != nil {
		s.mu.Lock()
		s.active = nil
		s.runs = slices.DeleteFunc(s.runs, func(r *Run) bool { return r == run })
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	s.forget()
	s.mu.Unlock()
	return run, nil
}

// forget drops the oldest finished runs beyond keepRuns.
func (s *Server) forget() {
	for len(s.runs) > keepRuns && s.runs[0].finished() {
		s.runs[0] = nil
		s.runs = s.runs[1:]
	}
}

func (s *Server) lookup(id string) (*Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.runs {
		if r.id == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
}

// newRunID is the sequence number with a random suffix, so that an ID
// from before a daemon restart does not name a new run.
func newRunID(seq int) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strconv.Itoa(seq) + "-" + hex.EncodeToString(b[:])
}

// BusyError is ErrBusy with the run in progress.
type BusyError struct{ RunID string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("%v (run %s); wait for it to end or stop it", ErrBusy, e.RunID)
}

// Unwrap makes errors.Is(err, ErrBusy) hold.
func (e *BusyError) Unwrap() error { return ErrBusy }

func (s *Server) servePing(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Ping{Version: s.Version, Busy: s.Busy()})
}

func (s *Server) serveStart(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(w, fmt.Errorf("%w: unable to decode the request: %w", ErrInvalid, err))
		return
	}
	run, err := s.start(req)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.Logger.Info("run started", "run", run.id, "command", run.command)
	writeJSON(w, http.StatusCreated, run.info())
}

func (s *Server) serveList(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	runs := append([]*Run(nil), s.runs...)
	s.mu.Unlock()
	infos := make([]RunInfo, 0, len(runs))
	for _, r := range runs {
		info := r.info()
		info.Detail = nil
		infos = append(infos, info)
	}
	writeJSON(w, http.StatusOK, infos)
}

func (s *Server) serveRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.lookup(r.PathValue("id"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, run.info())
}

func (s *Server) serveSignal(w http.ResponseWriter, r *http.Request) {
	var req SignalRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		s.writeError(w, fmt.Errorf("%w: unable to decode the request: %w", ErrInvalid, err))
		return
	}
	sig, err := ParseSignal(strings.ToUpper(req.Signal))
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.signal(w, r.PathValue("id"), sig)
}

// serveStop sends SIGTERM: the child gets the run's grace period, then
// SIGKILL; a second stop during the grace kills at once.
func (s *Server) serveStop(w http.ResponseWriter, r *http.Request) {
	s.signal(w, r.PathValue("id"), syscall.SIGTERM)
}

func (s *Server) signal(w http.ResponseWriter, id string, sig syscall.Signal) {
	run, err := s.lookup(id)
	if err == nil {
		err = run.Signal(sig)
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.Logger.Info("signal sent to run", "run", id, "signal", sigName(sig))
	writeJSON(w, http.StatusAccepted, run.info())
}

func sigName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig {
			return name
		}
	}
	return strconv.Itoa(int(sig))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with the status and code that err's sentinel maps to.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	body := ErrorBody{Message: err.Error()}
	status := http.StatusInternalServerError
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		status, body.Error, body.RunID = http.StatusConflict, "busy", busy.RunID
	case errors.Is(err, ErrInvalid):
		status, body.Error = http.StatusBadRequest, "invalid"
	case errors.Is(err, ErrNotFound):
		status, body.Error = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrFinished):
		status, body.Error = http.StatusConflict, "finished"
	case errors.Is(err, ErrUnauthorized):
		status, body.Error = http.StatusUnauthorized, "unauthorized"
	default:
		body.Error = "internal"
		s.Logger.Error("control request failed", "error", err)
	}
	writeJSON(w, status, body)
}

// checkToken admits requests carrying the bearer token. A refused request
// is logged with its method, path and peer, never its headers or body.
func (s *Server) checkToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			s.Logger.Warn("unauthorized control request", "method", r.Method,
				"path", r.URL.Path, "remote_addr", r.RemoteAddr,
				"token_given", len(got) > 0)
			w.Header().Set("WWW-Authenticate", `Bearer realm="supervisor"`)
			s.writeError(w, fmt.Errorf("%w: a bearer token from --control-token-file is "+
				"required", ErrUnauthorized))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkPeer admits unix-socket peers running as the daemon's user or as
// root. The socket's mode already keeps other users out; this also holds
// when the socket was made reachable by mistake (a chmod, a bind mount).
func (s *Server) checkPeer(next http.Handler) http.Handler {
	self := os.Getuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, ok := r.Context().Value(peerKey{}).(int)
		if !ok || (uid != self && uid != 0) {
			s.Logger.Warn("control request from another user refused", "method", r.Method,
				"path", r.URL.Path, "peer_uid", uid)
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: "forbidden",
				Message: "the control socket admits only its owner"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type peerKey struct{}

// withPeer records a unix-socket peer's uid in the connection's context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	ctlErr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if ctlErr != nil || err != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, int(cred.Uid))
}
