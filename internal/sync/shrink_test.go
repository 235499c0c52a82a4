package sync

import (
	"os"
	"path/filepath"
	stdsync "sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// A file rewritten shorter while the queue reads it (a routine `echo x > f`)
// is news, not a failure: the path runs again with the new content and
// nothing counts or reports a failure.
func TestFileThatShrinksWhileReadIsSyncedAgainWithoutAFailure(t *testing.T) {
	tests := []struct {
		name string
		// shrinkOnOpen truncates after the queue opened the file, so the
		// hash comes up short; otherwise the put's send comes up short.
		shrinkOnOpen bool
	}{
		{"while hashed", true},
		{"while sent", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			name := filepath.Join(f.workspace, "out.txt")
			var once stdsync.Once
			shrink := func() {
				once.Do(func() {
					if err := os.WriteFile(name, []byte("x\n"), 0o644); err != nil {
						t.Error(err)
					}
				})
			}
			if tt.shrinkOnOpen {
				f.queue.openFile = func(n string) (fileReader, error) {
					r, err := openNoFollow(n)
					if n == name {
						shrink()
					}
					return r, err
				}
			} else {
				f.backend.before = func(op, path string) error {
					if path == "out.txt" {
						shrink()
					}
					return nil
				}
			}
			f.start()
			f.write("out.txt", "a longer first version\n")
			f.hint(change.SourceAgent, "out.txt")
			f.flush()

			if got := tree(t, f.mirror)["out.txt"]; got != "x\n" {
				t.Errorf("mirror out.txt = %q, want the rewritten x", got)
			}
			failures := testutil.ToFloat64(f.metrics.SyncOps.WithLabelValues("put", "failure"))
			if failures != 0 {
				t.Errorf("put failures = %v, want 0", failures)
			}
			if got := testutil.ToFloat64(f.metrics.SyncRetries); got != 0 {
				t.Errorf("retries = %v, want 0", got)
			}
			if s := f.queue.Status(); len(s.Failed) != 0 || len(s.LastErrors) != 0 {
				t.Errorf("status failed = %+v, errors = %+v, want none", s.Failed, s.LastErrors)
			}
		})
	}
}
