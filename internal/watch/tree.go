package watch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/fsnotify/fsnotify"
)

// addResult says what became of one attempt to watch a directory.
type addResult uint8

const (
	addWatched addResult = iota // the watch is in place
	addGone                     // the directory vanished first; its removal has its own event
	addLimited                  // refused by the watch limit; reported for rescan
	addFailed                   // refused for another reason; logged and counted
)

// watchTree watches dir and every directory beneath it that the filter
// allows, and returns what became of dir's own watch.
//
// Each directory gets its watch before it is listed: a file created before
// the watch is found by the listing, one created after raises an event, so
// `mkdir -p a/b && echo x > a/b/f` cannot slip between the two. With
// hintFiles, every non-directory found is reported as a path hint; the
// initial walk leaves them to the queue's start-up scan.
//
// Directory entries come from readdir, which does not follow symbolic links:
// a link to a directory is reported like a file and never descended into.
func (w *Watcher) watchTree(ctx context.Context, dir string, hintFiles bool) (addResult, error) {
	first, firstErr := addGone, error(nil)
	pending := []string{dir}
	for len(pending) > 0 && ctx.Err() == nil {
		rel := pending[len(pending)-1]
		pending = pending[:len(pending)-1]

		result, err := w.addWatch(rel)
		if rel == dir {
			first, firstErr = result, err
		}
		if result != addWatched {
			// A directory without a watch is not listed either: whatever
			// is beneath it is left to the rescan that addWatch asked for.
			continue
		}

		entries, err := w.list(rel)
		if err != nil {
			continue
		}
		for _, e := range entries {
			child := path.Join(rel, e.Name())
			if w.filter.Skip(child) != "" {
				continue
			}
			if e.IsDir() {
				pending = append(pending, child)
				continue
			}
			if hintFiles {
				w.notifyPath(child)
			}
		}
	}
	return first, firstErr
}

// list returns the entries of a directory that has just got its watch.
//
// inotify follows a symbolic link given as the path, so a directory swapped
// for a link between its parent's listing and the watch gets the link's
// target watched. Opening without following links catches that case: the
// stray watch is dropped and the target is not listed. The workspace root
// itself may be a link, and is followed.
func (w *Watcher) list(rel string) ([]fs.DirEntry, error) {
	flags := os.O_RDONLY | syscall.O_DIRECTORY
	if rel != "" {
		flags |= syscall.O_NOFOLLOW
	}
	dir, err := os.OpenFile(w.ws.Abs(rel), flags, 0)
	if err == nil {
		defer dir.Close()
		var entries []fs.DirEntry
		entries, err = dir.ReadDir(-1)
		if err == nil {
			return entries, nil
		}
	}

	switch {
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
		w.forget(rel)
	case errors.Is(err, fs.ErrNotExist):
		// Removed since its watch was added; the removal has its own event.
	default:
		w.log.Warn("unable to list directory; changes in it may be missed until a rescan",
			"path", rel, "error", err)
	}
	return nil, err
}

// addWatch adds the watch for one directory and records the outcome.
func (w *Watcher) addWatch(rel string) (addResult, error) {
	err := w.n.Add(w.ws.Abs(rel))
	switch {
	case err == nil:
		w.mu.Lock()
		w.dirs.add(rel)
		// The walk that follows refuses again whatever beneath it is still
		// over the limit.
		w.unwatched.removeTree(rel)
		w.mu.Unlock()
		w.updateGauge()
		return addWatched, nil

	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return addGone, err

	case errors.Is(err, syscall.ENOSPC):
		w.watchLimitReached(rel)
		return addLimited, err

	default:
		w.metrics.WatcherErrors.Inc()
		w.log.Warn("unable to watch directory; changes in it are found only by rescans",
			"path", rel, "error", err)
		return addFailed, err
	}
}

// forget drops the watches on dir and everything beneath it, after dir was
// removed or moved away. A watch left behind on a moved directory would keep
// reporting its events under the old path.
func (w *Watcher) forget(dir string) {
	w.mu.Lock()
	drop := w.dirs.removeTree(dir)
	w.unwatched.removeTree(dir)
	w.mu.Unlock()
	if len(drop) == 0 {
		return
	}

	for _, d := range drop {
		// The kernel drops the watch of a deleted directory by itself, and
		// fsnotify forgets a moved one, so "not found" here is expected.
		err := w.n.Remove(w.ws.Abs(d))
		if err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
			w.log.Debug("unable to remove watch", "path", d, "error", err)
		}
	}
	w.updateGauge()
}

// rebuild drops every watch and adds them again from a fresh walk, after
// events were lost: directories created, moved or removed meanwhile are
// unknown. Everything is dropped first because a directory moved while
// events were lost still holds its watch under the old path, and fsnotify
// would hand that stale watch back for the new path.
func (w *Watcher) rebuild(ctx context.Context) {
	w.forget("")
	if result, err := w.watchTree(ctx, "", false); result == addFailed || result == addGone {
		w.goBlind("unable to watch the workspace directory again after lost events; "+
			"restart the supervisor", err)
	}
}

func (w *Watcher) updateGauge() {
	w.mu.Lock()
	n := w.dirs.len()
	w.mu.Unlock()
	w.metrics.WatchedDirectories.Set(float64(n))
}
