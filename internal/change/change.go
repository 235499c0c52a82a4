// Package change defines the vocabulary shared by the producers of change
// hints (the agent decoder and the filesystem watcher) and their single
// consumer (the sync queue): what a hint is, how a path is named, and which
// paths are never synced.
//
// It owns no goroutines and keeps no state beyond its values. It does not
// decide when a change is synced or whether its content differs from what the
// backend holds; that is the sync package's work.
package change

import "fmt"

// Source says who noticed a change. It is a metric label, so the set is fixed.
type Source uint8

const (
	// SourceAgent is a file tool whose tool_result confirmed the write.
	SourceAgent Source = iota
	// SourceFS is an inotify event from the workspace watcher.
	SourceFS
	// SourceScan is a comparison of the tree with the manifest: at start-up,
	// after a watcher overflow, and in the final pass before exit.
	SourceScan
)

// Sources lists every Source, for pre-creating metric series.
var Sources = []Source{SourceAgent, SourceFS, SourceScan}

func (s Source) String() string {
	switch s {
	case SourceAgent:
		return "agent"
	case SourceFS:
		return "fs"
	case SourceScan:
		return "scan"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Kind says what a hint asks of the queue.
type Kind uint8

const (
	// KindPath says Path may differ from the backend: created, written,
	// removed, renamed to or from, or turned into a directory. The queue
	// looks at the disk when the path's turn comes, so one kind covers all.
	KindPath Kind = iota
	// KindSettle says every pending filesystem change is complete now and
	// may be synced without waiting for its debounce: a Bash tool finished.
	KindSettle
	// KindRescan says events may have been lost under Path ("" for the whole
	// workspace): compare that tree with the manifest and queue each
	// difference, deletes included.
	KindRescan
)

func (k Kind) String() string {
	switch k {
	case KindPath:
		return "path"
	case KindSettle:
		return "settle"
	case KindRescan:
		return "rescan"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Hint is one piece of news about the workspace. Producers send hints; they
// never decide what is synced.
type Hint struct {
	Kind   Kind
	Source Source
	// Path is a clean workspace-relative slash path (see Workspace.Rel).
	// The empty string names the workspace root.
	Path string
	// Reason is a short fixed word for a KindRescan hint ("overflow",
	// "watch_error", ...). It becomes a metric label, so never free text.
	Reason string
}

// Sink receives hints. Notify is called from the producers' own goroutines
// and must return quickly: the agent decoder sits behind the pty reader, and
// a slow Notify would stall the agent.
type Sink interface {
	Notify(Hint)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Hint)

// Notify calls f(h).
func (f SinkFunc) Notify(h Hint) { f(h) }
