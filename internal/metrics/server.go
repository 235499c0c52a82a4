package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness collects the conditions /readyz waits for. Each component owns
// one named condition and sets it as its state changes, or has it checked
// on every probe with Watch; the supervisor is ready when every condition
// is met.
type Readiness struct {
	mu         sync.Mutex
	conditions map[string]string        // name -> reason it is not met; "" when met
	checks     map[string]func() string // name -> check run on every Ready
}

// NewReadiness returns a Readiness with the named conditions, all unmet
// with the reason "starting".
func NewReadiness(names ...string) *Readiness {
	r := &Readiness{conditions: make(map[string]string), checks: make(map[string]func() string)}
	for _, n := range names {
		r.conditions[n] = "starting"
	}
	return r
}

// Set marks condition name as met (reason "") or unmet with a one-line
// reason an operator can act on.
func (r *Readiness) Set(name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conditions[name] = reason
}

// Watch adds check to condition name for a state that its owner does not
// announce, such as a watcher that turns degraded. check runs on every
// Ready call and returns "" when met; the condition is met only when both
// the reason last Set and check are empty.
func (r *Readiness) Watch(name string, check func() string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.conditions[name]; !ok {
		r.conditions[name] = ""
	}
	r.checks[name] = check
}

// Ready reports whether every condition is met; when not, the reason lists
// each unmet condition as "name: reason", sorted by name.
func (r *Readiness) Ready() (bool, string) {
	r.mu.Lock()
	conditions := make(map[string]string, len(r.conditions))
	for name, reason := range r.conditions {
		conditions[name] = reason
	}
	checks := make(map[string]func() string, len(r.checks))
	for name, check := range r.checks {
		checks[name] = check
	}
	r.mu.Unlock()

	// The checks call into other components, so they run without the lock.
	var unmet []string
	for name, reason := range conditions {
		if check := checks[name]; reason == "" && check != nil {
			reason = check()
		}
		if reason != "" {
			unmet = append(unmet, name+": "+reason)
		}
	}
	sort.Strings(unmet)
	return len(unmet) == 0, strings.Join(unmet, "; ")
}

// Server serves the metrics and probe endpoints.
type Server struct {
	// Metrics is exposed on /metrics.
	Metrics *Metrics
	// Readiness answers /readyz.
	Readiness *Readiness
	// Liveness answers /healthz. Nil answers 200 while the server runs.
	Liveness *Liveness
	// Status returns the document served on /status; it is encoded as JSON.
	// Nil serves an empty object.
	Status func() any

	srv      *http.Server
	listener net.Listener
}

// Listen binds addr ("127.0.0.1:0" picks a free port) so that the address
// is known before Serve runs.
func (s *Server) Listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("unable to listen on %s: %w", addr, err)
	}
	s.listener = l
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	return nil
}

// Addr is the bound address, valid after Listen.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Serve answers requests until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.listener)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server, letting requests under way finish briefly.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// Handler returns the mux with every endpoint; tests use it directly.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /status", s.serveStatus)
	return mux
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.Liveness != nil {
		if alive, reason := s.Liveness.Alive(); !alive {
			reason = strings.Join(strings.Fields(reason), " ")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "dead: "+reason)
			return
		}
	}
	_, _ = fmt.Fprintln(w, "ok")
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ready, reason := s.Readiness.Ready()
	if !ready {
		// Probes show one line: a wrapped multi-line error stays on it.
		reason = strings.Join(strings.Fields(reason), " ")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready: "+reason)
		return
	}
	_, _ = fmt.Fprintln(w, "ready")
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	var doc any = struct{}{}
	if s.Status != nil {
		doc = s.Status()
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}
