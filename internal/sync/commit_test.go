package sync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	stdsync "sync"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// volatileBackend keeps what it accepts in memory, where it stays volatile,
// as a page cache would, until Sync makes it durable. Each Sync first
// checks the crash-safety rule of the group commit: the manifest records
// only content that has been made durable (an older version than the
// latest put is fine: a crash then makes the next start send it again).
// It fails the next failSyncs Syncs.
type volatileBackend struct {
	t        testing.TB
	manifest func() *Manifest

	mu        stdsync.Mutex
	volatile  map[string]*[32]byte // nil: deleted since the last Sync
	durable   map[string][32]byte
	made      map[string]map[[32]byte]bool // every content ever durable, by path
	syncs     int
	failSyncs int
}

var errDiskGone = errors.New("disk gone")

func newVolatileBackend(t testing.TB) *volatileBackend {
	return &volatileBackend{t: t, volatile: make(map[string]*[32]byte),
		durable: make(map[string][32]byte), made: make(map[string]map[[32]byte]bool)}
}

func (v *volatileBackend) Put(_ context.Context, path string, content io.Reader, _ int64,
	_ fs.FileMode) error {
	h := sha256.New()
	if _, err := io.Copy(h, content); err != nil {
		return err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	v.mu.Lock()
	defer v.mu.Unlock()
	v.volatile[path] = &sum
	return nil
}

func (v *volatileBackend) Delete(_ context.Context, path string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.volatile[path] = nil
	return nil
}

func (v *volatileBackend) Check(context.Context) error { return nil }

func (v *volatileBackend) Sync(context.Context) error {
	v.checkManifestIsDurable()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.syncs++
	if v.failSyncs > 0 {
		v.failSyncs--
		return errDiskGone
	}
	for p, sum := range v.volatile {
		if sum == nil {
			delete(v.durable, p)
		} else {
			v.durable[p] = *sum
			if v.made[p] == nil {
				v.made[p] = make(map[[32]byte]bool)
			}
			v.made[p][*sum] = true
		}
	}
	clear(v.volatile)
	return nil
}

// checkManifestIsDurable fails the test for every manifest record whose
// content a crash now could take from the backend.
func (v *volatileBackend) checkManifestIsDurable() {
	m := v.manifest()
	paths, err := m.Beneath("")
	if err != nil {
		v.t.Errorf("unable to list manifest: %v", err)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range paths {
		rec, ok := m.Get(p)
		if ok && !v.made[p][rec.Hash] {
			v.t.Errorf("manifest records %s before its content is durable", p)
		}
	}
}

func (v *volatileBackend) durableHash(path string) ([32]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sum, ok := v.durable[path]
	return sum, ok
}

// queueOnVolatileBackend returns a fixture whose queue syncs into a
// volatileBackend through concurrency workers.
func queueOnVolatileBackend(t *testing.T, concurrency int,
	opts ...fixtureOption) (*fixture, *volatileBackend) {
	v := newVolatileBackend(t)
	opts = append([]fixtureOption{func(c *Config) {
		c.Backend, c.Concurrency = v, concurrency
	}}, opts...)
	f := newFixture(t, opts...)
	v.manifest = func() *Manifest { return f.queue.Manifest() }
	return f, v
}

func TestGroupCommitRecordsNothingBeforeTheBackendMadeItDurable(t *testing.T) {
	f, v := queueOnVolatileBackend(t, 8)
	f.start()

	// Rounds of writes, rewrites and deletes from many workers at once;
	// every Sync checks the manifest against what is durable.
	const files = 100
	for round := range 3 {
		for i := range files {
			rel := fmt.Sprintf("d%d/f%d.txt", i%7, i)
			switch {
			case round == 2 && i%3 == 0:
				f.remove(rel)
			default:
				f.write(rel, fmt.Sprintf("round %d file %d", round, i))
			}
			f.hint(change.SourceAgent, rel)
		}
		f.flush()
	}

	m := f.queue.Manifest()
	for i := range files {
		rel := fmt.Sprintf("d%d/f%d.txt", i%7, i)
		rec, recorded := m.Get(rel)
		sum, durable := v.durableHash(rel)
		if i%3 == 0 {
			if recorded || durable {
				t.Errorf("%s: deleted, yet recorded %t, durable %t", rel, recorded, durable)
			}
			continue
		}
		want := sha256.Sum256(fmt.Appendf(nil, "round 2 file %d", i))
		if !recorded || !durable || rec.Hash != want || sum != want {
			t.Errorf("%s: recorded %t, durable %t, or not the last content", rel, recorded, durable)
		}
	}
}

func TestFailedGroupCommitFailsItsOperationsSoTheyAreRetried(t *testing.T) {
	var log eventLog
	f, v := queueOnVolatileBackend(t, 1, func(c *Config) {
		c.OnSynced = log.add("synced")
		c.OnFailed = log.add("failed")
	})
	v.failSyncs = 1
	f.start()

	f.write("a.txt", "hello")
	f.hint(change.SourceAgent, "a.txt")
	f.flush()

	want := []string{
		"failed put a.txt bytes=0 attempt=1 permanent=false",
		"synced put a.txt bytes=5 attempt=2",
	}
	if got := log.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	if _, ok := v.durableHash("a.txt"); !ok {
		t.Fatal("a.txt is not durable in the backend after the retry")
	}
}

func TestCommitterGroupsTheUpdatesHandedOverDuringACommit(t *testing.T) {
	tests := []struct {
		name     string
		syncErr  error
		recorded int // paths in the manifest afterwards
	}{
		{name: "a group is recorded together", recorded: 1 + 20},
		{name: "a failed sync fails every update of its group, and no other",
			syncErr: errDiskGone, recorded: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := OpenManifest(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()

			// The first sync holds its group open until the others have
			// all been handed over; they must then form one group.
			syncs := 0
			release, firstSync := make(chan struct{}), make(chan struct{})
			c := newCommitter(m, nil)
			c.durable = func(context.Context) error {
				syncs++
				if syncs == 1 {
					close(firstSync)
					<-release
					return nil
				}
				return tt.syncErr
			}
			go c.run()

			var done stdsync.WaitGroup
			errs := make(chan error, 21)
			add := func(path string) {
				done.Add(1)
				c.add(manifestUpdate{path: path, record: Record{Size: 1}}, func(err error) {
					if _, ok := m.Get(path); ok != (err == nil) {
						t.Errorf("%s: recorded %t when its commit returned %v", path, ok, err)
					}
					errs <- err
					done.Done()
				})
			}
			add("first")
			<-firstSync
			var handedOver stdsync.WaitGroup
			for i := range 20 {
				handedOver.Go(func() { add(fmt.Sprintf("f%d", i)) })
			}
			handedOver.Wait()
			close(release)
			done.Wait()
			c.stop()

			if syncs != 2 {
				t.Errorf("%d syncs for 21 updates, want 2: one group behind the first", syncs)
			}
			close(errs)
			failed := 0
			for err := range errs {
				if err != nil {
					failed++
					if !errors.Is(err, tt.syncErr) {
						t.Errorf("commit error %v does not wrap %v", err, tt.syncErr)
					}
				}
			}
			if got := m.Len(); got != tt.recorded || failed != 21-tt.recorded {
				t.Errorf("%d recorded and %d failed, want %d recorded", got, failed, tt.recorded)
			}
		})
	}
}

func (f *fixture) remove(rel string) {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.workspace, filepath.FromSlash(rel))); err != nil {
		f.t.Fatal(err)
	}
}

func TestACrashBeforeTheGroupCommitLosesNoDelete(t *testing.T) {
	tests := []struct {
		name        string
		syncedFirst bool   // a file synced and recorded before the crash
		restartAs   string // the target after the restart
		want        map[string]string
	}{
		{name: "a file the manifest missed is deleted with the workspace's",
			syncedFirst: true, want: map[string]string{"kept.txt": "kept"}},
		{name: "even when the crash came before the first commit",
			want: map[string]string{}},
		{name: "another target's files are not the supervisor's to delete",
			syncedFirst: true, restartAs: "dir:/elsewhere",
			want: map[string]string{"kept.txt": "kept", "unrecorded.txt": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.start()
			if tt.syncedFirst {
				f.write("kept.txt", "kept")
				f.hint(change.SourceAgent, "kept.txt")
				f.flush()
			}

			// A put the backend finished but whose group the crash cut
			// short: in the mirror, not in the manifest, and gone from the
			// workspace by the next start.
			f.crash()
			unrecorded := filepath.Join(f.mirror, "unrecorded.txt")
			if err := os.MkdirAll(f.mirror, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(unrecorded, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			f.open(withTarget(tt.restartAs))
			f.scan("startup")
			f.start()
			f.flush()

			if got := tree(t, f.mirror); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("mirror after restarting from a crash = %v, want %v", got, tt.want)
			}
		})
	}
}
