package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// ErrPermanent marks a backend error that retrying the same content cannot
// fix (an HTTP 403, say). The queue stops retrying the path, reports it as
// failed, and tries again only when the file's content changes. Any other
// error is retried with backoff.
var ErrPermanent = errors.New("permanent backend failure")

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
	"dir": {usage: "dir:PATH", parse: parseDirTarget},
}

type targetParser struct {
	usage string // shown when a target is unknown
	parse func(rest string) (Backend, error)
}

// ParseTarget returns the backend a --sync value names. An unknown scheme is
// an ErrUnknownTarget error that lists the supported forms.
func ParseTarget(target string) (Backend, error) {
	scheme, rest, ok := strings.Cut(target, ":")
	p, known := targetParsers[scheme]
	if !ok || !known {
		return nil, fmt.Errorf("%w %q: supported forms are %s",
			ErrUnknownTarget, target, supportedTargets())
	}
	b, err := p.parse(rest)
	if err != nil {
		return nil, fmt.Errorf("unable to use sync target %q: %w", target, err)
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
