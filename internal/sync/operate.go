package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// Skip reasons the queue adds to change.Filter's; metric labels, fixed set.
const (
	SkipSymlink    = "symlink"     // a symbolic link, or a path beneath one
	SkipTooLarge   = "too_large"   // over Config.MaxFileSize
	SkipNotRegular = "not_regular" // a fifo, socket or device
)

// errShrank reports a file that ended before the size its lstat gave, the
// mark of a rewrite (`echo x > f`) while it was read. It is news, not a
// failure: the path runs again with the new content.
var errShrank = errors.New("file shrank while read")

// errSymlinkAncestor reports a path whose parent directories include a
// symbolic link: following it could read files outside the workspace.
var errSymlinkAncestor = errors.New("a parent directory is a symbolic link")

type resultKind uint8

const (
	resultDone        resultKind = iota // synced, unchanged, skipped or dropped
	resultChanged                       // the file changed while read; run again
	resultRetry                         // failed; run again after a backoff
	resultPermanent                     // failed in a way retrying cannot fix
	resultInterrupted                   // the queue is stopping; keep the path queued
)

// result is an operation's outcome as finish needs it.
type result struct {
	kind        resultKind
	op          string // "put" or "delete" for failures
	err         error
	hash        [32]byte      // content that failed permanently
	retryAfter  time.Duration // the least wait the backend asked for
	keepFailure bool          // a skip that leaves an earlier permanent failure standing
	// update, when not nil, is what the backend accepted and the manifest
	// must record before the operation counts as done (see recorded).
	update *manifestUpdate
	bytes  int64 // sent by a put, for the success metrics
}

var done = result{}

// operate brings the backend in line with what path is on disk now. Each
// branch is one row of the table in DESIGN.md section 6.
func (q *Queue) operate(ctx context.Context, j job) result {
	if reason := q.filter.Skip(j.path); reason != "" {
		q.skip(reason, j.path)
		return q.forget(j.path, reason)
	}
	info, err := q.lstat(j.path)
	switch {
	case errors.Is(err, errSymlinkAncestor):
		q.skip(SkipSymlink, j.path)
		return q.remove(ctx, j)
	case errors.Is(err, fs.ErrNotExist):
		return q.remove(ctx, j)
	case err != nil:
		return q.localFailure("put", j.path, err)
	}

	switch mode := info.Mode(); {
	case mode.IsRegular():
		return q.put(ctx, j, info)
	case mode.IsDir():
		return q.syncDir(ctx, j)
	case mode&fs.ModeSymlink != 0:
		// A link is never followed, so whatever the path held before is
		// gone from the synced tree.
		q.skip(SkipSymlink, j.path)
		return q.remove(ctx, j)
	default:
		q.skip(SkipNotRegular, j.path)
		return q.remove(ctx, j)
	}
}

// lstat describes path without following any symbolic link on the way: a
// link among its parents is errSymlinkAncestor, a file among them makes the
// path not exist.
func (q *Queue) lstat(rel string) (fs.FileInfo, error) {
	if rel != "" {
		elements := strings.Split(rel, "/")
		for i := 1; i < len(elements); i++ {
			dir := strings.Join(elements[:i], "/")
			info, err := os.Lstat(q.ws.Abs(dir))
			switch {
			case err != nil && isNotDir(err):
				return nil, fs.ErrNotExist
			case err != nil:
				return nil, err
			case info.Mode()&fs.ModeSymlink != 0:
				return nil, errSymlinkAncestor
			case !info.IsDir():
				return nil, fs.ErrNotExist
			}
		}
	}
	info, err := os.Lstat(q.ws.Abs(rel))
	if err != nil && isNotDir(err) {
		return nil, fs.ErrNotExist
	}
	return info, err
}

// put sends a regular file unless the backend already holds its content.
func (q *Queue) put(ctx context.Context, j job, info fs.FileInfo) result {
	// A file where a directory was: everything synced beneath it is gone.
	if err := q.queueBeneath(j.path); err != nil {
		return q.localFailure("put", j.path, err)
	}
	if q.maxFileSize > 0 && info.Size() > q.maxFileSize {
		q.skip(SkipTooLarge, j.path)
		return q.forget(j.path, SkipTooLarge)
	}

	f, err := q.openFile(q.ws.Abs(j.path))
	if err != nil {
		return q.localFailure("put", j.path, err)
	}
	defer f.Close()
	if opened, err := f.Stat(); err != nil || !os.SameFile(info, opened) {
		return result{kind: resultChanged}
	}

	// Hash first: most hints for a path whose content the backend already
	// holds (the agent's and the watcher's for one write) end here.
	sum, err := hashContent(f, info.Size())
	if errors.Is(err, errShrank) {
		return result{kind: resultChanged}
	} else if err != nil {
		return q.localFailure("put", j.path, err)
	}
	if r := q.unchanged(j.path, sum, info); r != nil {
		return *r
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return q.localFailure("put", j.path, err)
	}
	content := newSendReader(f, info.Size())
	content.digest = sum
	if err := q.backend.Put(ctx, j.path, content, info.Size(), info.Mode()); err != nil {
		switch {
		case errors.Is(content.err, errShrank) || errors.Is(err, errChangedWhileSent):
			return result{kind: resultChanged}
		case content.err != nil:
			return q.localFailure("put", j.path, content.err)
		}
		return q.backendFailure(ctx, "put", err, sum)
	}

	// Record what was sent, which may differ from what was hashed above if
	// the file changed in between; the check below then syncs it again.
	rec := Record{Hash: content.sum(), Size: info.Size(), ModTime: info.ModTime(), Mode: info.Mode()}
	r := result{op: "put", bytes: info.Size(), update: &manifestUpdate{path: j.path, record: rec}}
	if now, err := os.Lstat(q.ws.Abs(j.path)); err != nil || !os.SameFile(info, now) ||
		now.Size() != info.Size() || !now.ModTime().Equal(info.ModTime()) {
		r.kind = resultChanged
	}
	return r
}

// unchanged returns the result for content the backend already holds (or
// that already failed permanently), nil when it must be sent.
func (q *Queue) unchanged(path string, sum [32]byte, info fs.FileInfo) *result {
	if q.permanentlyFailed(path, sum) {
		return &result{keepFailure: true}
	}
	rec, ok := q.manifest.Get(path)
	if !ok || rec.Hash != sum || rec.Mode.Perm() != info.Mode().Perm() {
		return nil
	}
	q.metrics.SyncUnchanged.Inc()
	if !rec.sameMetadata(info) {
		// Keep the scan's fast path working for a file touched but not
		// changed. Failing to record that costs a hash at the next scan.
		rec.Size, rec.ModTime, rec.Mode = info.Size(), info.ModTime(), info.Mode()
		if err := q.manifest.Put(path, rec); err != nil {
			q.log.Warn("unable to update manifest metadata", "path", path, "error", err)
		}
	}
	return &done
}

// remove deletes a path that is gone from the synced tree, and queues the
// deletes of every synced path beneath it. A path never synced is dropped.
func (q *Queue) remove(ctx context.Context, j job) result {
	if j.path == "" {
		return q.localFailure("delete", j.path,
			errors.New("the workspace directory is gone; restore it or restart the supervisor"))
	}
	if err := q.queueBeneath(j.path); err != nil {
		return q.localFailure("delete", j.path, err)
	}
	if _, ok := q.manifest.Get(j.path); !ok {
		return done
	}
	return q.delete(ctx, j)
}

// forget drops a synced path that is no longer synced (an --ignore or
// .gitignore rule now covers it, or it grew over the size limit) from the
// manifest, and leaves the backend's copy alone: an ignore rule says "do
// not send", not "destroy", and an edited .gitignore must not delete half
// a mirror. Without this, every scan would find the path differing from
// the manifest and queue it again, for ever.
func (q *Queue) forget(path, reason string) result {
	if _, ok := q.manifest.Get(path); !ok {
		return done
	}
	if err := q.manifest.Delete(path); err != nil {
		return q.localFailure("put", path, err)
	}
	q.log.Info("path no longer synced; the backend keeps its last copy", "path", path,
		"reason", reason)
	return done
}

func (q *Queue) delete(ctx context.Context, j job) result {
	if err := q.backend.Delete(ctx, j.path); err != nil {
		return q.backendFailure(ctx, "delete", err, [32]byte{})
	}
	return result{op: "delete", update: &manifestUpdate{path: j.path, delete: true}}
}

// recorded finishes an operation whose manifest update has been committed
// (err nil) or has failed with its group, which makes the operation a
// local failure, retried: the backend's copy may not be durable. It runs
// on the committer's goroutine.
func (q *Queue) recorded(e *entry, j job, r result, err error) {
	if err != nil {
		r = q.localFailure(r.op, j.path, err)
	} else {
		q.succeeded(r.op, j, r.bytes)
	}
	// Report first, as work does: finish wakes Flush.
	q.reportFailure(j, r)
	q.finish(e, j, r)
}

// syncDir reconciles a directory's subtree with the manifest. A directory
// where a file was synced first deletes that file.
func (q *Queue) syncDir(ctx context.Context, j job) result {
	if _, ok := q.manifest.Get(j.path); ok && j.path != "" {
		// The subtree's operations come after the delete; wait for its
		// record rather than let them see the file as still synced.
		r := q.delete(ctx, j)
		if r.update == nil {
			return r
		}
		if err := q.committer.commitNow(*r.update); err != nil {
			return q.localFailure("delete", j.path, err)
		}
		q.succeeded("delete", j, 0)
	}
	if _, err := q.reconcile(ctx, j.path); err != nil {
		if ctx.Err() != nil {
			return result{kind: resultInterrupted}
		}
		return q.localFailure("put", j.path, err)
	}
	return done
}

// queueBeneath queues every synced path beneath dir; their operations find
// them gone and delete them. They are urgent: the event that removed their
// directory has had its debounce already.
func (q *Queue) queueBeneath(dir string) error {
	paths, err := q.manifest.Beneath(dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		q.detected[change.SourceScan].Inc()
		q.enqueue(p, true)
	}
	return nil
}

func (q *Queue) skip(reason, path string) {
	q.metrics.PathsSkipped.WithLabelValues(reason).Inc()
	q.log.Debug("skipped path", "path", path, "reason", reason)
}

func (q *Queue) succeeded(op string, j job, bytes int64) {
	latency := q.clock.Now().Sub(j.first)
	q.metrics.SyncOps.WithLabelValues(op, "success").Inc()
	q.metrics.SyncLatency.WithLabelValues(op).Observe(latency.Seconds())
	q.metrics.SyncBytes.Add(float64(bytes))
	q.log.Debug("synced path", "op", op, "path", j.path, "bytes", bytes,
		"latency_ms", latency.Milliseconds())
	if q.onSynced != nil {
		q.onSynced(Event{Op: op, Path: j.path, Bytes: bytes, Attempt: j.attempts + 1})
	}
}

// localFailure is a failure on this side of the backend (a file that
// cannot be read, a manifest that cannot be written): retried with
// backoff, reported in /status.
func (q *Queue) localFailure(op, path string, err error) result {
	q.metrics.SyncOps.WithLabelValues(op, "failure").Inc()
	return result{kind: resultRetry, op: op, err: fmt.Errorf("unable to sync %q: %w", path, err)}
}

// backendFailure classifies an error the backend returned.
func (q *Queue) backendFailure(ctx context.Context, op string, err error, sum [32]byte) result {
	if ctx.Err() != nil {
		return result{kind: resultInterrupted}
	}
	q.metrics.SyncOps.WithLabelValues(op, "failure").Inc()
	if errors.Is(err, ErrPermanent) {
		return result{kind: resultPermanent, op: op, err: err, hash: sum}
	}
	r := result{kind: resultRetry, op: op, err: err}
	var later *RetryAfterError
	if errors.As(err, &later) {
		r.retryAfter = later.Delay
	}
	return r
}

// fileReader is the part of *os.File an operation reads through.
type fileReader interface {
	io.ReadSeekCloser
	Stat() (fs.FileInfo, error)
}

// openNoFollow opens a file for reading, refusing a symbolic link in the
// last element (a link swapped in after lstat) and never blocking on a fifo
// swapped in the same way.
func openNoFollow(name string) (fileReader, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// hashContent returns the sha256 of the first size bytes of r; fewer bytes
// is errShrank.
func hashContent(r io.Reader, size int64) ([32]byte, error) {
	s := newSendReader(r, size)
	if _, err := io.Copy(io.Discard, s); err != nil {
		return [32]byte{}, err
	}
	return s.sum(), nil
}

// sendReader streams exactly size bytes of a file while hashing them, so the
// manifest records the hash of what was sent. A read error, or end of file
// before size bytes, is kept in err: the backend then fails the put rather
// than store a truncated file, and the queue knows the failure was local.
type sendReader struct {
	r      io.Reader
	size   int64
	n      int64
	h      hash.Hash
	err    error
	digest [32]byte // the hash put computed before sending; see Digested
}

func newSendReader(r io.Reader, size int64) *sendReader {
	return &sendReader{r: io.LimitReader(r, size), size: size, h: sha256.New()}
}

func (s *sendReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	s.h.Write(p[:n])
	if err == io.EOF && s.n < s.size {
		err = fmt.Errorf("%w (%d of %d bytes): %w", errShrank, s.n, s.size, io.ErrUnexpectedEOF)
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// SHA256 implements Digested.
func (s *sendReader) SHA256() [32]byte { return s.digest }

func (s *sendReader) sum() [32]byte {
	var out [32]byte
	copy(out[:], s.h.Sum(nil))
	return out
}
