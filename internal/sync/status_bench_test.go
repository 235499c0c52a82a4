package sync

import (
	"fmt"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// BenchmarkScrapeOldestPending compares what one /metrics scrape costs the
// queue through OldestPending and through the full Status, with 50,000
// paths pending.
func BenchmarkScrapeOldestPending(b *testing.B) {
	clock := newFakeClock()
	for _, how := range []string{"OldestPending", "Status"} {
		b.Run(how, func(b *testing.B) {
			f := newBenchFixture(b, clock)
			for i := range 50000 {
				f.Notify(change.Hint{Kind: change.KindPath, Source: change.SourceFS,
					Path: fmt.Sprintf("dir%02d/f%05d", i%50, i)})
			}
			b.ResetTimer()
			for b.Loop() {
				if how == "Status" {
					_ = f.Status().OldestPendingSeconds
				} else {
					_ = f.OldestPending()
				}
			}
		})
	}
}

func newBenchFixture(b *testing.B, clock Clock) *Queue {
	dir := b.TempDir()
	ws, err := change.NewWorkspace(dir)
	if err != nil {
		b.Fatal(err)
	}
	backend, err := NewDirBackend(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	q, err := New(Config{Workspace: ws, Backend: backend, StateDir: b.TempDir(),
		Clock: clock, Debounce: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = q.Close() })
	return q
}
