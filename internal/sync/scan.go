package sync

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// Scan compares the whole workspace with the manifest and queues every
// difference as a scan hint: files new or changed since they were synced
// (judged by size, mtime and mode, without reading them) and synced paths
// that are gone. The supervisor runs it at start-up, so that changes made
// while it was down are not lost, and before the final flush. reason labels
// the Rescans metric ("startup", "final").
func (q *Queue) Scan(ctx context.Context, reason string) error {
	q.metrics.Rescans.WithLabelValues(reason).Inc()
	start := time.Now()
	queued, err := q.reconcile(ctx, "")
	if err != nil {
		return fmt.Errorf("unable to scan workspace: %w", err)
	}
	q.log.Info("scanned workspace", "reason", reason, "queued", queued,
		"duration_ms", time.Since(start).Milliseconds())
	return nil
}

// reconcile walks the subtree at dir without following symbolic links and
// queues what differs from the manifest. It returns how many paths it
// queued. A directory it cannot read keeps its synced paths: not seeing a
// file is not evidence that it is gone.
func (q *Queue) reconcile(ctx context.Context, dir string) (int, error) {
	queued := 0
	push := func(rel string) {
		q.detected[change.SourceScan].Inc()
		q.enqueue(rel, false)
		queued++
	}
	var unreadable []string

	// The synced paths are listed before the walk: a path the running
	// queue records while the walk goes on was queued by the walk itself,
	// and must not be taken for one the walk did not meet. The list is
	// sorted, so the walk marks what it met by binary search in a bit per
	// path rather than in a set of path strings (4 MB less at 100,000).
	paths, err := q.manifest.Beneath(dir)
	if err != nil {
		return 0, err
	}
	met := make([]bool, len(paths))

	err = q.walk(ctx, dir, func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			unreadable = append(unreadable, rel)
			q.log.Warn("unable to read directory; its files keep their last synced state",
				"path", rel, "error", err)
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rec, synced := q.manifest.Get(rel)
		if synced {
			if i, found := slices.BinarySearch(paths, rel); found {
				met[i] = true
			}
		}
		if !d.Type().IsRegular() {
			if synced {
				push(rel) // a synced file became a link or a fifo
			}
			return nil
		}
		info, err := d.Info()
		if err == nil && !synced && q.maxFileSize > 0 && info.Size() > q.maxFileSize {
			return nil // never synced and not to be: nothing to queue
		}
		if err != nil || !synced || !rec.sameMetadata(info) {
			push(rel)
		}
		return nil
	})
	if err != nil {
		return queued, err
	}

	// Synced paths the walk did not meet are gone, or now hidden behind a
	// link or an ignore rule; their operations decide which.
	for i, p := range paths {
		if met[i] || beneathAny(p, unreadable) {
			continue
		}
		push(p)
	}
	return queued, nil
}

// walk visits the entries beneath dir that the filter lets through, with
// workspace-relative paths, never following links. fn receives a non-nil
// err only for a directory that cannot be read.
func (q *Queue) walk(ctx context.Context, dir string,
	fn func(rel string, d fs.DirEntry, err error) error) error {
	root := q.ws.Root()
	return filepath.WalkDir(q.ws.Abs(dir), func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel, relErr := filepath.Rel(root, p)
		if relErr != nil {
			return relErr
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if err != nil {
			if d == nil && rel == dir {
				return err // the subtree's root itself is unreadable
			}
			return fn(rel, d, err)
		}
		if q.filter.Skip(rel) != "" {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		return fn(rel, d, nil)
	})
}

func beneathAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if change.IsBeneath(p, d) {
			return true
		}
	}
	return false
}

// Baseline records the current tree as synced without sending anything,
// for a workspace just pulled from the backend. It hashes every file the
// filter and the size limit let through and replaces the manifest with
// them. Call it before Scan and Run. A file that cannot be read is left
// out (and so synced by the next scan); a directory that cannot be read
// keeps its synced paths.
func (q *Queue) Baseline(ctx context.Context) error {
	old, err := q.manifest.Beneath("")
	if err != nil {
		return fmt.Errorf("unable to baseline: %w", err)
	}
	records := make(map[string]Record)
	var unreadable []string
	err = q.walk(ctx, "", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			unreadable = append(unreadable, rel)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rec, err := q.hashFile(rel)
		if err != nil {
			q.log.Warn("unable to baseline file; it is synced by the next scan",
				"path", rel, "error", err)
			return nil
		}
		if q.maxFileSize <= 0 || rec.Size <= q.maxFileSize {
			records[rel] = rec
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unable to baseline: %w", err)
	}
	for _, p := range old {
		if rec, ok := q.manifest.Get(p); ok && beneathAny(p, unreadable) {
			records[p] = rec
		}
	}
	if err := q.manifest.Replace(records); err != nil {
		return fmt.Errorf("unable to baseline: %w", err)
	}
	q.log.Info("recorded workspace as synced", "files", len(records))
	return nil
}

// hashFile reads a regular file without following links and returns its
// record.
func (q *Queue) hashFile(rel string) (Record, error) {
	f, err := q.openFile(q.ws.Abs(rel))
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Record{}, err
	}
	if !info.Mode().IsRegular() {
		return Record{}, fmt.Errorf("%s is no longer a regular file", rel)
	}
	sum, err := hashContent(f, info.Size())
	if err != nil {
		return Record{}, err
	}
	return Record{Hash: sum, Size: info.Size(), ModTime: info.ModTime(), Mode: info.Mode()}, nil
}
