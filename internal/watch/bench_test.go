package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// BenchmarkWriteToHint times one file write at a time from the write to
// its hint: the kernel's inotify delivery, fsnotify's reader and the
// watcher's handling. ns/op is that latency.
func BenchmarkWriteToHint(b *testing.B) {
	root := b.TempDir()
	ws, err := change.NewWorkspace(root)
	if err != nil {
		b.Fatal(err)
	}
	hints := make(chan string, 64)
	w, err := New(Config{Workspace: ws, Sink: change.SinkFunc(func(h change.Hint) {
		hints <- h.Path
	})})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-w.Ready()

	n := 0
	for b.Loop() {
		name := fmt.Sprintf("f%d", n)
		n++
		if err := os.WriteFile(filepath.Join(root, name), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		for got := <-hints; got != name; got = <-hints {
		}
	}
}
