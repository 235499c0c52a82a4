package sync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// newBenchQueue runs a queue over a dir: mirror with the wall clock and the
// supervisor's default settings, less the debounce.
func newBenchQueue(b *testing.B, debounce time.Duration) (*Queue, string, chan string) {
	b.Helper()
	base := b.TempDir()
	ws := filepath.Join(base, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		b.Fatal(err)
	}
	workspace, err := change.NewWorkspace(ws)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := NewDirBackend(filepath.Join(base, "mirror"))
	if err != nil {
		b.Fatal(err)
	}
	// A path arrives when its group is durable and recorded, as the
	// supervisor counts it synced.
	arrived := make(chan string, 1024)
	q, err := New(Config{Workspace: workspace, Backend: dir,
		StateDir: filepath.Join(base, "state"), Debounce: debounce,
		OnSynced: func(e Event) { arrived <- e.Path }})
	if err != nil {
		b.Fatal(err)
	}
	runQueue(b, q)
	return q, ws, arrived
}

// benchmarkHintToMirror times one write at a time from its hint until it is
// synced: the queue, the hash, the copy into the dir: backend, and the
// group commit (a syncfs of the mirror, then the manifest update).
func benchmarkHintToMirror(b *testing.B, source change.Source, debounce time.Duration) {
	q, ws, arrived := newBenchQueue(b, debounce)
	n := 0
	for b.Loop() {
		rel := fmt.Sprintf("f%d", n)
		n++
		if err := os.WriteFile(filepath.Join(ws, rel), []byte(rel), 0o644); err != nil {
			b.Fatal(err)
		}
		q.Notify(change.Hint{Kind: change.KindPath, Source: source, Path: rel})
		for got := <-arrived; got != rel; got = <-arrived {
		}
	}
}

func BenchmarkAgentHintToMirror(b *testing.B) {
	benchmarkHintToMirror(b, change.SourceAgent, DefaultDebounce)
}

func BenchmarkFilesystemHintToMirrorWithoutDebounce(b *testing.B) {
	benchmarkHintToMirror(b, change.SourceFS, NoDebounce)
}

// BenchmarkBurstOf1000HintsToMirror times 1000 new files hinted at once
// until the last is in the mirror; ns/op is per burst.
func BenchmarkBurstOf1000HintsToMirror(b *testing.B) {
	q, ws, arrived := newBenchQueue(b, NoDebounce)
	round := 0
	for b.Loop() {
		b.StopTimer()
		dir := fmt.Sprintf("r%d", round)
		round++
		if err := os.Mkdir(filepath.Join(ws, dir), 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range 1000 {
			p := filepath.Join(ws, dir, fmt.Sprint(i))
			if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for i := range 1000 {
			q.Notify(change.Hint{Kind: change.KindPath, Source: change.SourceFS,
				Path: fmt.Sprintf("%s/%d", dir, i)})
		}
		for range 1000 {
			<-arrived
		}
	}
}

// newIdleQueue returns a queue on a fake clock that is never run: hints
// stay queued, which isolates their cost.
func newIdleQueue(b *testing.B) (*Queue, string) {
	b.Helper()
	base := b.TempDir()
	workspace, err := change.NewWorkspace(base)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := NewDirBackend(filepath.Join(b.TempDir(), "mirror"))
	if err != nil {
		b.Fatal(err)
	}
	filter, err := change.NewFilter(".supervisor", nil)
	if err != nil {
		b.Fatal(err)
	}
	q, err := New(Config{Workspace: workspace, Filter: filter, Backend: dir,
		Clock: newFakeClock(), StateDir: filepath.Join(base, ".supervisor")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = q.Close() })
	return q, base
}

// BenchmarkNotifyOnePath is the cost of one more hint for a path already
// queued: what a file written in a tight loop costs the queue.
func BenchmarkNotifyOnePath(b *testing.B) {
	q, _ := newIdleQueue(b)
	h := change.Hint{Kind: change.KindPath, Source: change.SourceFS, Path: "hot.log"}
	b.ReportAllocs()
	for b.Loop() {
		q.Notify(h)
	}
	if d := q.Depth(); d != 1 {
		b.Fatalf("depth %d, want 1", d)
	}
}

// BenchmarkScanOf10000UnchangedFiles is the start-up scan of a workspace
// the manifest already describes: a walk and a metadata comparison per
// file, no reads. ns/op is per scan.
func BenchmarkScanOf10000UnchangedFiles(b *testing.B) {
	q, ws := newIdleQueue(b)
	for i := range 10000 {
		dir := filepath.Join(ws, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := q.Baseline(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		queued, err := q.reconcile(ctx, "")
		if err != nil || queued != 0 {
			b.Fatalf("reconcile queued %d, %v; want nothing", queued, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/file")
}

// runQueue runs q until the benchmark ends, then stops it, closes it and
// runs after (to release what the benchmark opened around the queue).
func runQueue(b *testing.B, q *Queue, after ...func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = q.Run(ctx)
	}()
	b.Cleanup(func() {
		cancel()
		<-stopped
		_ = q.Close()
		for _, f := range after {
			f()
		}
	})
}
