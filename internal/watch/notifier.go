package watch

import "github.com/fsnotify/fsnotify"

// notifier is the part of an fsnotify.Watcher the watcher uses. It exists so
// tests can inject conditions that a real kernel produces only under load:
// a queue overflow, or the per-user watch limit running out.
type notifier interface {
	// Add watches one directory (not its subdirectories).
	Add(path string) error
	// Remove drops the watch on one directory.
	Remove(path string) error
	// Events and Errors are closed by Close.
	Events() <-chan fsnotify.Event
	Errors() <-chan error
	// WatchList returns the absolute paths with a watch, in no order.
	WatchList() []string
	Close() error
}

// fsnotifyNotifier adapts *fsnotify.Watcher, whose channels are fields, to
// notifier.
type fsnotifyNotifier struct {
	w *fsnotify.Watcher
}

func openFsnotify() (notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return fsnotifyNotifier{w: w}, nil
}

func (n fsnotifyNotifier) Add(path string) error         { return n.w.Add(path) }
func (n fsnotifyNotifier) Remove(path string) error      { return n.w.Remove(path) }
func (n fsnotifyNotifier) Events() <-chan fsnotify.Event { return n.w.Events }
func (n fsnotifyNotifier) Errors() <-chan error          { return n.w.Errors }
func (n fsnotifyNotifier) WatchList() []string           { return n.w.WatchList() }
func (n fsnotifyNotifier) Close() error                  { return n.w.Close() }
