package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Client talks to a daemon's control API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewUnixClient returns a client for the daemon listening on the socket.
func NewUnixClient(socket string) *Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
	}
	// The host is a placeholder: every request goes to the socket.
	return &Client{base: "http://supervisor/" + APIVersion,
		http: &http.Client{Transport: transport}}
}

// NewTCPClient returns a client for the daemon at addr (host:port) that
// sends token as a bearer token.
func NewTCPClient(addr, token string) *Client {
	return &Client{base: "http://" + addr + "/" + APIVersion, token: token,
		http: &http.Client{Transport: &http.Transport{}}}
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) (Ping, error) {
	var p Ping
	err := c.call(ctx, http.MethodGet, "/ping", nil, &p)
	return p, err
}

// Start asks for a run. A daemon busy with another run returns a
// *BusyError.
func (c *Client) Start(ctx context.Context, req StartRequest) (RunInfo, error) {
	var info RunInfo
	err := c.call(ctx, http.MethodPost, "/runs", req, &info)
	return info, err
}

// Run returns a run's state.
func (c *Client) Run(ctx context.Context, id string) (RunInfo, error) {
	var info RunInfo
	err := c.call(ctx, http.MethodGet, "/runs/"+id, nil, &info)
	return info, err
}

// List returns the runs the daemon remembers, oldest first.
func (c *Client) List(ctx context.Context) ([]RunInfo, error) {
	var runs []RunInfo
	err := c.call(ctx, http.MethodGet, "/runs", nil, &runs)
	return runs, err
}

// Signal sends a signal (by name) to a run's process group.
func (c *Client) Signal(ctx context.Context, id, signal string) error {
	return c.call(ctx, http.MethodPost, "/runs/"+id+"/signal", SignalRequest{Signal: signal}, nil)
}

// Stop sends SIGTERM to a run; its grace period applies.
func (c *Client) Stop(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, "/runs/"+id+"/stop", nil, nil)
}

// Events streams a run's events after ID after, calling fn for each in
// order, and returns the ID of the last event fn saw. It returns nil once
// the exit event has been handled, and an error when the stream broke
// first; calling it again with the returned ID resumes.
func (c *Client) Events(ctx context.Context, id string, after uint64,
	fn func(Event) error) (uint64, error) {
	req, err := c.request(ctx, http.MethodGet, "/runs/"+id+"/events", nil)
	if err != nil {
		return after, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(after, 10))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return after, fmt.Errorf("unable to reach the daemon: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return after, decodeError(resp)
	}
	exited := false
	err = ReadEvents(resp.Body, func(e Event) error {
		if e.ID != 0 {
			after = e.ID
		}
		if e.Type == EventExit {
			exited = true
		}
		return fn(e)
	})
	if err == nil && !exited {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return after, fmt.Errorf("unable to read the event stream: %w", err)
	}
	return after, nil
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("unable to encode the request: %w", err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("unable to build the request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("unable to reach the daemon: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("unable to decode the daemon's answer: %w", err)
	}
	return nil
}

// decodeError turns an error response back into the sentinel it stands for.
func decodeError(resp *http.Response) error {
	var body ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err := json.Unmarshal(data, &body); err != nil || body.Error == "" {
		return fmt.Errorf("unable to use the control API: HTTP %d", resp.StatusCode)
	}
	var sentinel error
	switch body.Error {
	case "busy":
		return &BusyError{RunID: body.RunID}
	case "invalid":
		sentinel = ErrInvalid
	case "not_found":
		sentinel = ErrNotFound
	case "finished":
		sentinel = ErrFinished
	case "unauthorized":
		sentinel = ErrUnauthorized
	default:
		sentinel = errors.New(body.Error)
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error, Message: body.Message,
		sentinel: sentinel}
}

// APIError is an error answer of the daemon.
type APIError struct {
	Status   int
	Code     string
	Message  string
	sentinel error
}

func (e *APIError) Error() string { return e.Message }

// Unwrap returns the sentinel matching Code (ErrInvalid, ErrNotFound, ...).
func (e *APIError) Unwrap() error { return e.sentinel }
