package sync

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
)

func (f *fixture) scan(reason string) {
	f.t.Helper()
	if err := f.queue.Scan(context.Background(), reason); err != nil {
		f.t.Fatalf("Scan: %v", err)
	}
}

// restart stops the queue, lets the test change the workspace while it is
// down, then opens it again on the same state directory and mirror.
func (f *fixture) restart(whileStopped func()) {
	f.close()
	whileStopped()
	f.backend.mu.Lock()
	f.backend.ops = nil
	f.backend.mu.Unlock()
	f.open()
}

func TestStartupScanSyncsExactlyTheChangesMadeWhileStopped(t *testing.T) {
	f := newFixture(t)
	f.write("same.txt", "untouched")
	f.write("modified.txt", "before")
	f.write("deleted.txt", "doomed")
	f.write("gone/a.txt", "a")
	f.write("gone/b/c.txt", "c")
	f.scan("startup")
	f.start()
	f.flush()

	f.restart(func() {
		f.write("modified.txt", "after, and longer")
		f.write("new/file.txt", "new")
		for _, p := range []string{"deleted.txt", "gone"} {
			if err := os.RemoveAll(filepath.Join(f.workspace, p)); err != nil {
				t.Fatal(err)
			}
		}
	})
	f.scan("startup")
	f.start()
	f.flush()

	got := append([]string(nil), f.backend.ops...)
	sort.Strings(got)
	want := []string{"delete deleted.txt", "delete gone/a.txt", "delete gone/b/c.txt",
		"put modified.txt", "put new/file.txt"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("operations after restart = %v, want %v", got, want)
	}
	wantTree := map[string]string{"same.txt": "untouched",
		"modified.txt": "after, and longer", "new/file.txt": "new"}
	if tr := tree(t, f.mirror); !reflect.DeepEqual(tr, wantTree) {
		t.Errorf("mirror = %v, want %v", tr, wantTree)
	}
	if got := testutil.ToFloat64(f.metrics.Rescans.WithLabelValues("startup")); got != 2 {
		t.Errorf("rescans{startup} = %v, want 2", got)
	}
}

func TestScanOfAnUnchangedTreeQueuesNothing(t *testing.T) {
	f := newFixture(t)
	f.write("a.txt", "a")
	f.write("d/b.txt", "b")
	f.scan("startup")
	f.start()
	f.flush()

	f.scan("final")
	if p := f.queue.Pending(); len(p) != 0 {
		t.Fatalf("scan of a synced tree queued %v", p)
	}
}

func TestBaselineMarksTreeSyncedWithoutUploading(t *testing.T) {
	f := newFixture(t)
	f.write("a.txt", "a")
	f.write("d/b.txt", "b")
	f.write(".git/HEAD", "ref")
	if err := f.queue.Baseline(context.Background()); err != nil {
		t.Fatalf("Baseline: %v", err)
	}
	f.scan("startup")
	f.start()
	f.flush()
	if len(f.backend.ops) != 0 {
		t.Fatalf("baseline then scan sent %v, want nothing", f.backend.ops)
	}
	if n := f.queue.Manifest().Len(); n != 2 {
		t.Errorf("manifest holds %d paths, want 2 (.git excluded)", n)
	}

	// After the baseline, real changes sync as usual.
	f.write("a.txt", "a changed")
	f.hint(change.SourceFS, "a.txt")
	f.flush()
	if ops := f.backend.opsOn("a.txt"); !reflect.DeepEqual(ops, []string{"put a.txt"}) {
		t.Errorf("operations on a.txt = %v, want one put", ops)
	}
}

func TestBaselineForgetsPathsNoLongerInTheTree(t *testing.T) {
	f := newFixture(t)
	f.write("kept.txt", "k")
	f.write("dropped.txt", "d")
	f.scan("startup")
	f.start()
	f.flush()
	f.restart(func() {
		if err := os.Remove(filepath.Join(f.workspace, "dropped.txt")); err != nil {
			t.Fatal(err)
		}
	})
	if err := f.queue.Baseline(context.Background()); err != nil {
		t.Fatalf("Baseline: %v", err)
	}
	if _, ok := f.queue.Manifest().Get("dropped.txt"); ok {
		t.Error("baseline kept a path that is no longer in the tree")
	}
	if _, ok := f.queue.Manifest().Get("kept.txt"); !ok {
		t.Error("baseline lost a path that is in the tree")
	}
}
