package sync

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// A path synced before and no longer synced now (an ignore rule covers it,
// or it grew over the size limit) keeps its copy in the backend and leaves
// the manifest, so that later scans stop queueing it.
func TestPathsNoLongerSyncedAreForgottenAndNotQueuedAgain(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		before fixtureOption // the run that synced it
		after  fixtureOption // the run that must stop syncing it
		grow   bool          // rewrite the file larger before the second run
	}{
		{"now ignored", "notes/todo.txt",
			func(c *Config) { c.Filter = mustFilter(t) },
			func(c *Config) { c.Filter = mustFilter(t, "notes") }, false},
		{"now too large", "big.txt",
			func(c *Config) { c.Filter = mustFilter(t) },
			func(c *Config) { c.Filter = mustFilter(t); c.MaxFileSize = 10 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.before)
			f.start()
			f.write(tt.path, "synced\n")
			f.hint(change.SourceAgent, tt.path)
			f.flush()
			f.close()

			if tt.grow {
				f.write(tt.path, "grown past the limit\n")
			}
			f.open(tt.after)
			f.start()
			scanned := testutil.ToFloat64(f.metrics.ChangesDetected.WithLabelValues("scan"))
			if err := f.queue.Scan(context.Background(), "startup"); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(f.metrics.ChangesDetected.WithLabelValues("scan")); got != scanned+1 {
				t.Fatalf("first scan queued %v paths, want 1", got-scanned)
			}
			f.flush()

			scanned = testutil.ToFloat64(f.metrics.ChangesDetected.WithLabelValues("scan"))
			if err := f.queue.Scan(context.Background(), "final"); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(f.metrics.ChangesDetected.WithLabelValues("scan")); got != scanned {
				t.Errorf("second scan queued %v paths, want none", got-scanned)
			}
			if got := tree(t, f.mirror)[tt.path]; got != "synced\n" {
				t.Errorf("mirror %s = %q, want the last synced copy kept", tt.path, got)
			}
			if _, ok := f.queue.manifest.Get(tt.path); ok {
				t.Errorf("manifest still holds %s", tt.path)
			}
		})
	}
}

func mustFilter(t *testing.T, ignore ...string) *change.Filter {
	t.Helper()
	filter, err := change.NewFilter(".supervisor", ignore)
	if err != nil {
		t.Fatal(err)
	}
	return filter
}
