package watch

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
	"time"
)

// DefaultRescanInterval is how often directories left without a watch are
// rescanned when Config.RescanInterval is zero. A rescan of such a subtree
// costs one walk comparing sizes and mtimes with the manifest, no reads, so
// every ten seconds is cheap even for large trees; it is also the longest a
// change beneath one waits before the queue hears of it.
const DefaultRescanInterval = 10 * time.Second

// ReasonUnwatched labels the periodic rescans of directories left without
// a watch by the inotify watch limit.
const ReasonUnwatched = "unwatched"

// rescanTicker starts the clock of the periodic rescan; tests replace it
// with a channel they fire by hand.
type rescanTicker func(d time.Duration) (tick <-chan time.Time, stop func())

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// revisitUnwatched runs on every tick of the periodic rescan. Each directory
// refused a watch by the watch limit is tried again, since watches freed
// elsewhere or a raised limit may let it in now; a directory that gets its
// watch is walked and its files hinted, as a new directory is. Either way
// its subtree is rescanned against the manifest, which is how changes
// beneath a directory without a watch (deletes included) reach the queue.
func (w *Watcher) revisitUnwatched(ctx context.Context) {
	w.mu.Lock()
	dirs := w.unwatched.all()
	w.mu.Unlock()

	for _, dir := range dirs {
		if ctx.Err() != nil {
			return
		}
		err := w.n.Add(w.ws.Abs(dir))
		switch {
		case err == nil:
			// The walk adds the same watch again, which inotify treats as
			// an update, and watches and hints what lies beneath.
			w.watchTree(ctx, dir, true)
			w.log.Info("directory refused a watch earlier is watched now", "path", dir)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			// Gone: its removal was seen by its parent's watch, or is found
			// by the rescan below.
			w.forget(dir)
		case errors.Is(err, syscall.ENOSPC):
			// Still over the limit; the rescan below covers it until then.
		default:
			w.log.Debug("unable to watch directory again", "path", dir, "error", err)
		}
		w.notifyRescan(dir, ReasonUnwatched)
	}
}
