package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// ErrPermanent marks a backend error that retrying the same content cannot
// fix (an HTTP 403, say). The queue stops retrying the path, reports it as
// failed, and tries again only when the file's content changes. Any other
// error is retried with backoff.
var ErrPermanent = errors.New("permanent backend failure")

// RetryAfterError is a retryable backend error that says how long the
// backend wants to be left alone (HTTP's Retry-After). The queue waits at
// least Delay before the next attempt on the path, longer when its own
// backoff says so.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.Delay)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// Digested is content whose SHA-256 the queue computed just before handing
// it over, so that a backend that must send the digest ahead of the body
// (HTTP's Content-Digest) need not read the file twice. The file may change
// between that hash and the read: a backend that sends the digest must
// check the bytes it sends against it.
type Digested interface {
	io.Reader
	SHA256() [32]byte
}

// Syncer is a Backend whose Put and Delete are durable only once a later
// Sync returns, so that many operations share one flush. The queue calls
// Sync before the manifest records any operation that finished before it:
// the manifest never claims a file a crash could still take away.
type Syncer interface {
	Sync(ctx context.Context) error
}

// ErrUnknownTarget reports a --sync target whose scheme no backend handles.
var ErrUnknownTarget = errors.New("unknown sync target")

// Backend receives the workspace's files. Paths are clean workspace-relative
// slash paths, never empty. The queue calls at most one method per path at a
// time, but different paths concurrently, so implementations must be safe
// for concurrent use.
type Backend interface {
	// Put stores content under path, replacing what was there. content
	// yields size bytes; if reading it fails, Put must return an error and
	// leave the previous version in place, because the file changed or
	// vanished under the reader. mode carries the file's permission bits.
	Put(ctx context.Context, path string, content io.Reader, size int64, mode fs.FileMode) error
	// Delete removes path. Deleting a path the backend does not hold
	// succeeds.
	Delete(ctx context.Context, path string) error
	// Check reports whether the backend is usable now; the readiness probe
	// calls it. It must not change any file the mirror holds.
	Check(ctx context.Context) error
}

// targetParsers maps a --sync scheme to the constructor of its backend. The
// rest of the target (after "scheme:") is passed unchanged, so a URL scheme
// such as "https" receives "//host/path" and can rebuild the URL. Adding a
// backend is one entry here plus its file.
var targetParsers = map[string]targetParser{
	"dir": {usage: "dir:PATH", parse: func(rest string, _ TargetOptions) (Backend, error) {
		return parseDirTarget(rest)
	}},
	"http":  {usage: "http://HOST/BASE", parse: parseHTTPTarget("http")},
	"https": {usage: "https://HOST/BASE", parse: parseHTTPTarget("https")},
	"exec":  {usage: "exec:TEMPLATE", parse: parseExecTarget},
}

type targetParser struct {
	usage string // shown when a target is unknown
	parse func(rest string, opts TargetOptions) (Backend, error)
}

// TargetOptions carries what some backends need beyond the target string.
// The zero value suits the dir backend; the others say what they miss.
type TargetOptions struct {
	// Workspace is the synced tree: exec's {abs} and working directory.
	Workspace *change.Workspace
	// Starter starts and reaps the exec backend's commands; the
	// supervisor's one *proc.Reaper. Required by exec:.
	Starter Starter
	// Token is the bearer token of http(s): and is handed to exec commands
	// as SUPERVISOR_SYNC_TOKEN. Empty sends none. It is never logged.
	Token string
	// Timeout bounds each backend call. Zero means DefaultOpTimeout.
	Timeout time.Duration
	// Logger receives the backend's logs. Nil discards them.
	Logger hclog.Logger
}

// DefaultOpTimeout bounds one backend call when TargetOptions.Timeout is
// zero: long enough for a large file on a slow link, short enough that a
// hung server costs one retry, not the run.
const DefaultOpTimeout = 60 * time.Second

func (o TargetOptions) timeout() time.Duration { return orDefault(o.Timeout, DefaultOpTimeout) }

func (o TargetOptions) logger() hclog.Logger {
	if o.Logger == nil {
		return hclog.NewNullLogger()
	}
	return o.Logger
}

// ParseTarget returns the backend a --sync value names, with default
// options. An unknown scheme is an ErrUnknownTarget error that lists the
// supported forms.
func ParseTarget(target string) (Backend, error) {
	return OpenTarget(target, TargetOptions{})
}

// OpenTarget is ParseTarget with the options backends need to run.
func OpenTarget(target string, opts TargetOptions) (Backend, error) {
	scheme, rest, ok := strings.Cut(target, ":")
	p, known := targetParsers[scheme]
	if !ok || !known {
		return nil, fmt.Errorf("%w %q: supported forms are %s",
			ErrUnknownTarget, RedactTarget(target), supportedTargets())
	}
	b, err := p.parse(rest, opts)
	if err != nil {
		return nil, fmt.Errorf("unable to use sync target %q: %w", RedactTarget(target), err)
	}
	return b, nil
}

func supportedTargets() string {
	var usages []string
	for _, p := range targetParsers {
		usages = append(usages, p.usage)
	}
	sort.Strings(usages)
	return strings.Join(usages, ", ")
}
