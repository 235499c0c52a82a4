package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Headers of the HTTP sync protocol beyond the standard ones. The protocol
// is specified in docs/sync-protocol.md; keep the two in step.
const (
	// HeaderSequence carries a number that grows with every request the
	// supervisor sends, retries included, so that a server can discard an
	// operation on a path older than one it has already applied.
	HeaderSequence = "Supervisor-Sequence"
	// HeaderFileMode carries the file's permission bits in octal ("0644").
	HeaderFileMode = "Supervisor-File-Mode"
)

// errChangedWhileSent reports a file whose bytes stopped matching the
// digest announced in Content-Digest while they were sent. The request is
// cut short before its last byte, so the server never holds a complete
// body with a wrong digest; the queue retries with the new content.
var errChangedWhileSent = errors.New("file changed while sent; its digest no longer matches")

// HTTPBackend sends each put as PUT BASE/<path> and each delete as DELETE
// BASE/<path>, one request per operation, and leaves retrying to the queue:
// it classifies each answer as success, retryable (with the server's
// Retry-After) or permanent (ErrPermanent). It never follows redirects.
type HTTPBackend struct {
	base    string // scheme://host/path, escaped, without a trailing slash
	client  *http.Client
	token   string
	timeout time.Duration
	log     hclog.Logger
	seq     atomic.Uint64
}

// NewHTTPBackend returns a backend for base, an http or https URL without
// user information, query or fragment.
func NewHTTPBackend(base string, opts TargetOptions) (*HTTPBackend, error) {
	u, err := url.Parse(base)
	if err != nil {
		// url.Error quotes the whole URL, credentials included; the
		// caller quotes the target redacted.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("unable to parse the URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q is neither http nor https", u.Scheme)
	case u.Host == "":
		return nil, errors.New("the URL has no host")
	case u.User != nil:
		// A credential in the URL would show in ps and in every error
		// message that quotes the URL.
		return nil, errors.New("the URL carries a user or password; " +
			"put the credential in SUPERVISOR_SYNC_TOKEN or --sync-token-file instead")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("the URL has a query or fragment; the protocol appends " +
			"paths to it, so give only scheme, host and base path")
	}
	h := &HTTPBackend{
		base:    u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"),
		client:  newHTTPClient(),
		token:   opts.Token,
		timeout: opts.timeout(),
		log:     opts.logger(),
	}
	// Starting from the wall clock in microseconds keeps the sequence
	// growing across restarts too, unless the clock steps back.
	h.seq.Store(uint64(time.Now().UnixMicro()))
	return h, nil
}

func parseHTTPTarget(scheme string) func(string, TargetOptions) (Backend, error) {
	return func(rest string, opts TargetOptions) (Backend, error) {
		return NewHTTPBackend(scheme+":"+rest, opts)
	}
}

// newHTTPClient returns a client that keeps enough idle connections for
// the queue's workers (the default of two per host would reconnect for
// most requests) and returns redirects to the caller instead of following
// them with a body it cannot send twice.
func newHTTPClient() *http.Client {
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// URL returns the URL a path is sent to.
func (h *HTTPBackend) URL(path string) string { return h.base + "/" + EscapePath(path) }

// EscapePath percent-encodes every byte of a slash path except the
// unreserved characters of RFC 3986 (A-Z a-z 0-9 - . _ ~) and the slash,
// with upper-case hex digits. Servers decode it with any standard
// percent-decoder.
func EscapePath(path string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '/' || c == '-' || c == '.' || c == '_' || c == '~' ||
			'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// ContentDigest is the Content-Digest field value (RFC 9530) for a SHA-256.
func ContentDigest(sum [32]byte) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// Put implements Backend.
func (h *HTTPBackend) Put(ctx context.Context, path string, content io.Reader, size int64,
	mode fs.FileMode) error {
	sum, body, err := digestedBody(content, size)
	if err != nil {
		return fmt.Errorf("unable to put %q: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := h.newRequest(ctx, http.MethodPut, path, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Digest", ContentDigest(sum))
	req.Header.Set(HeaderFileMode, fmt.Sprintf("%04o", mode.Perm()))

	err = h.do(req, "put", path)
	if body.changed {
		return fmt.Errorf("unable to put %q: %w", path, errChangedWhileSent)
	}
	return err
}

// Delete implements Backend. A 404 answer counts as success: the server
// does not hold the path, which is what a delete asks for.
func (h *HTTPBackend) Delete(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := h.newRequest(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	return h.do(req, "delete", path)
}

// Check implements Backend with HEAD BASE/. Any answer but a 5xx, a 401 or
// a 403 means the server is there and takes the token; the protocol does
// not require the server to implement HEAD itself.
func (h *HTTPBackend) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, h.base+"/", nil)
	if err != nil {
		return fmt.Errorf("unable to build the probe request: %w", err)
	}
	h.authorize(req)
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("unable to reach the backend: %w", err)
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("the backend refused the token (%s); check SUPERVISOR_SYNC_TOKEN "+
			"or --sync-token-file", resp.Status)
	case resp.StatusCode >= 500:
		return fmt.Errorf("the backend answered %s", resp.Status)
	}
	return nil
}

func (h *HTTPBackend) newRequest(ctx context.Context, method, path string,
	body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.URL(path), body)
	if err != nil {
		return nil, fmt.Errorf("unable to build the %s request for %q: %w", method, path, err)
	}
	h.authorize(req)
	req.Header.Set(HeaderSequence, strconv.FormatUint(h.seq.Add(1), 10))
	return req, nil
}

func (h *HTTPBackend) authorize(req *http.Request) {
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
}

// do sends req and turns the answer into the queue's terms: nil, a
// retryable error (a *RetryAfterError when the server named a delay), or
// an error wrapping ErrPermanent.
func (h *HTTPBackend) do(req *http.Request, op, path string) error {
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("unable to %s %q: no answer within %s: %w", op, path, h.timeout, err)
		}
		return fmt.Errorf("unable to %s %q: %w", op, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	// Read a little of the body for the error message, and drain the rest
	// (up to a bound) so the connection can be used again.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	h.log.Trace("backend answered", "op", op, "path", path, "status", resp.StatusCode,
		"duration_ms", time.Since(start).Milliseconds())
	return classify(op, path, resp, snippet)
}

// classify maps an HTTP answer to the queue's outcome; the table is in
// docs/sync-protocol.md.
func classify(op, path string, resp *http.Response, snippet []byte) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusNotFound && op == "delete":
		return nil
	}

	err := fmt.Errorf("unable to %s %q: the backend answered %s", op, path, resp.Status)
	if text := strings.TrimSpace(string(bytes.ToValidUTF8(snippet, nil))); text != "" {
		err = fmt.Errorf("%w: %q", err, text)
	}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500:
		if delay, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &RetryAfterError{Delay: delay, Err: err}
		}
		return err
	case code >= 300 && code < 400:
		return fmt.Errorf("%w (redirects are not followed; point --sync at %s): %w",
			err, resp.Header.Get("Location"), ErrPermanent)
	}
	return fmt.Errorf("%w: %w", err, ErrPermanent)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP
// date. A date in the past is no delay.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// verifiedBody streams exactly size bytes and checks them against the
// digest sent ahead in Content-Digest. It holds back the last chunk until
// the check passes: when the file changed under it, Read fails instead, so
// the request ends short of its Content-Length and the server discards it.
type verifiedBody struct {
	r       io.Reader
	size    int64
	n       int64
	want    [32]byte
	h       hash.Hash
	changed bool
}

func (v *verifiedBody) Read(p []byte) (int, error) {
	if v.changed {
		return 0, errChangedWhileSent
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n == v.size && !bytes.Equal(v.h.Sum(nil), v.want[:]) {
		v.changed = true
		return 0, errChangedWhileSent
	}
	return n, err
}

// digestedBody returns the digest of content and a body that sends it.
// Content from the queue carries its digest (Digested); any other reader is
// read into memory first, which suits tests and small callers only.
func digestedBody(content io.Reader, size int64) ([32]byte, *verifiedBody, error) {
	var want [32]byte
	if d, ok := content.(Digested); ok {
		want = d.SHA256()
	} else {
		data, err := io.ReadAll(io.LimitReader(content, size))
		if err != nil {
			return want, nil, err
		}
		want = sha256.Sum256(data)
		content = bytes.NewReader(data)
	}
	body := &verifiedBody{r: io.LimitReader(content, size), size: size, want: want,
		h: sha256.New()}
	return want, body, nil
}
