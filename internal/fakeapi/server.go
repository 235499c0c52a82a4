package fakeapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrNotLoopback reports a listen address that is not on the loopback
// interface. The fake API has no authentication and must never be reachable
// from another host.
var ErrNotLoopback = errors.New("listen address is not loopback")

// DefaultAddr picks a free port on the IPv4 loopback.
const DefaultAddr = "127.0.0.1:0"

// Server serves a handler on a loopback address.
type Server struct {
	listener net.Listener
	http     *http.Server
	done     chan error

	waitOnce sync.Once
	serveErr error // what Serve returned, once it has
}

// Listen starts serving h on addr, which must name a loopback IP
// ("127.0.0.1:0", "[::1]:8080"); "" means DefaultAddr. Host names, including
// "localhost", are refused: what they resolve to is not the caller's choice.
func Listen(addr string, h http.Handler) (*Server, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("unable to parse listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("unable to listen on %q: %w", addr, ErrNotLoopback)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("unable to listen: %w", err)
	}

	s := &Server{
		listener: ln,
		http:     &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		done:     make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

// URL is the base URL to give the CLI as ANTHROPIC_BASE_URL, without a
// trailing slash.
func (s *Server) URL() string {
	return "http://" + s.listener.Addr().String()
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Close stops the server at once, dropping open connections.
func (s *Server) Close() error {
	if err := s.http.Close(); err != nil {
		return fmt.Errorf("unable to close server: %w", err)
	}
	return s.wait()
}

// Shutdown stops accepting requests and waits for the open ones to finish
// or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		return fmt.Errorf("unable to shut down server: %w", err)
	}
	return s.wait()
}

// wait returns what Serve returned, which is ErrServerClosed after a Close
// or Shutdown and thus not an error. It may be called more than once.
func (s *Server) wait() error {
	s.waitOnce.Do(func() {
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("unable to serve: %w", err)
		}
	})
	return s.serveErr
}
