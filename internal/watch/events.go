package watch

import (
	"context"
	"errors"
	"os"

	"github.com/fsnotify/fsnotify"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// handleEvent turns one fsnotify event into hints and keeps the watches in
// step with the directory tree.
func (w *Watcher) handleEvent(ctx context.Context, ev fsnotify.Event) {
	rel, err := w.ws.Rel("", ev.Name)
	if err != nil {
		// Only a watch left on a directory moved out of the workspace could
		// report such a path, and forget drops those.
		w.log.Debug("event outside the workspace dropped", "path", ev.Name)
		return
	}
	if rel == "" {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.forget("")
			w.goBlind("the workspace directory was removed or moved; "+
				"restart the supervisor on the new directory", nil)
		}
		return
	}

	// A changed .gitignore, or a directory that held one, changes what the
	// filter says from now on.
	w.filter.Observe(rel)

	// Paths the filter rejects are dropped here without a count: the queue
	// counts skips by reason, and --ignore is the setting that tunes them.
	if w.filter.Skip(rel) != "" {
		return
	}
	w.log.Trace("event received", "path", rel, "op", ev.Op.String())
	w.notifyPath(rel)

	// A directory that is gone from this path takes its watches along, or
	// they would report its later events under this stale path.
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.forget(rel)
	}

	// A new directory, made here or moved in, may already hold files and
	// subdirectories: watch it, then report everything it holds.
	if ev.Has(fsnotify.Create) {
		info, err := os.Lstat(w.ws.Abs(rel))
		if err == nil && info.IsDir() {
			w.watchTree(ctx, rel, true)
		}
	}
}

// handleError turns a watcher error into a request to rescan the workspace,
// since events may have been lost.
//
// Rescans are counted by the queue that performs them, as changes are; the
// watcher counts only what it sees itself.
func (w *Watcher) handleError(ctx context.Context, err error) {
	if !errors.Is(err, fsnotify.ErrEventOverflow) {
		w.metrics.WatcherErrors.Inc()
		w.log.Error("watcher error; asking for a rescan of the workspace", "error", err)
		w.notifyRescan("", ReasonWatchError)
		return
	}

	w.metrics.WatcherOverflows.Inc()
	w.mu.Lock()
	w.overflows++
	w.mu.Unlock()
	w.log.Warn("kernel event queue overflowed; rewatching and rescanning the workspace",
		"fix", "raise fs.inotify.max_queued_events if this repeats")

	// Directories made while events were lost have no watch yet; they get
	// one before the rescan is asked for, so nothing falls between the two.
	w.rebuild(ctx)
	w.notifyRescan("", ReasonOverflow)
}

// watchLimitReached records a directory refused a watch by the inotify
// watch limit and asks for a rescan of it. The watcher keeps running: every
// RescanInterval it tries such directories again and rescans them (see
// revisitUnwatched), so changes beneath them arrive late but arrive.
func (w *Watcher) watchLimitReached(rel string) {
	w.metrics.WatcherErrors.Inc()
	w.mu.Lock()
	first := w.unwatched.len() == 0
	w.unwatched.add(rel)
	w.mu.Unlock()

	// One error line per episode is enough; a large tree would otherwise
	// log once for every directory left over.
	if first {
		w.log.Error("inotify watch limit reached; directories without a watch are "+
			"synced only by rescans", "path", rel, "fix", raiseLimitAdvice())
	} else {
		w.log.Debug("directory left without a watch", "path", rel)
	}
	w.notifyRescan(rel, ReasonWatchLimit)
}

// goBlind records that no further events can arrive.
func (w *Watcher) goBlind(reason string, err error) {
	w.mu.Lock()
	w.blind = reason
	w.mu.Unlock()
	if err != nil {
		w.log.Error(reason, "root", w.ws.Root(), "error", err)
		return
	}
	w.log.Error(reason, "root", w.ws.Root())
}

func (w *Watcher) notifyPath(rel string) {
	w.sink.Notify(change.Hint{Kind: change.KindPath, Source: change.SourceFS, Path: rel})
}

func (w *Watcher) notifyRescan(rel, reason string) {
	w.sink.Notify(change.Hint{
		Kind: change.KindRescan, Source: change.SourceFS, Path: rel, Reason: reason,
	})
}
