package sync

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func withTarget(target string) fixtureOption {
	return func(c *Config) { c.Target = target }
}

// syncedTree writes two files and syncs them to the fixture's mirror.
func syncedTree(t *testing.T, target string) *fixture {
	f := newFixture(t, withTarget(target))
	f.write("a.txt", "a")
	f.write("d/b.txt", "b")
	f.scan("startup")
	f.start()
	f.flush()
	return f
}

func TestSameTargetKeepsTheManifest(t *testing.T) {
	f := syncedTree(t, "dir:/m1")
	f.close()
	f.open(withTarget("dir:/m1"))

	f.scan("startup")
	if p := f.queue.Pending(); len(p) != 0 {
		t.Fatalf("reopening for the same target queued %v", p)
	}
}

func TestAnotherTargetGetsTheWholeTree(t *testing.T) {
	f := syncedTree(t, "dir:/m1")
	f.close()
	f.open(withTarget("https://backend.example/files"))

	if n := f.queue.Manifest().Len(); n != 0 {
		t.Fatalf("manifest kept %d records of the old target", n)
	}
	f.scan("startup")
	if p, want := f.queue.Pending(), []string{"a.txt", "d/b.txt"}; !reflect.DeepEqual(p, want) {
		t.Fatalf("pending after a target change = %v, want %v", p, want)
	}
	if target, err := f.queue.Manifest().Target(); err != nil || target != "https://backend.example/files" {
		t.Fatalf("manifest target = %q, %v", target, err)
	}
}

func TestWipedMirrorIsFilledAgain(t *testing.T) {
	f := syncedTree(t, "dir:/m1")
	f.close()
	if err := os.RemoveAll(f.mirror); err != nil {
		t.Fatal(err)
	}
	f.open(withTarget("dir:/m1"))
	f.scan("startup")
	f.start()
	f.flush()

	want := map[string]string{"a.txt": "a", "d/b.txt": "b"}
	if got := tree(t, f.mirror); !reflect.DeepEqual(got, want) {
		t.Fatalf("mirror after a wipe = %v, want %v", got, want)
	}
}

// crash stops the fixture's queue the way SIGKILL would: the manifest is
// closed without being marked closed.
func (f *fixture) crash() {
	if f.cancel != nil {
		f.cancel()
		<-f.stopped
		f.cancel = nil
	}
	if err := f.queue.Manifest().Close(); err != nil {
		f.t.Fatal(err)
	}
	f.queue = nil
}

func TestInterruptedCopiesAreClearedAfterACrash(t *testing.T) {
	f := syncedTree(t, "dir:/m1")
	debris := []string{
		filepath.Join(f.mirror, tempPrefix+"123"),
		filepath.Join(f.mirror, "d", tempPrefix+"456"),
	}
	f.crash()
	for _, p := range debris {
		if err := os.WriteFile(p, []byte("half a file"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.open(withTarget("dir:/m1"))

	want := map[string]string{"a.txt": "a", "d/b.txt": "b"}
	if got := tree(t, f.mirror); !reflect.DeepEqual(got, want) {
		t.Fatalf("mirror after restarting from a crash = %v, want %v", got, want)
	}
}

func TestACleanStopLeavesTheMirrorAlone(t *testing.T) {
	f := syncedTree(t, "dir:/m1")
	f.close()
	// Not the supervisor's: a clean stop leaves no debris, so nothing in
	// the mirror is taken for it.
	other := filepath.Join(f.mirror, tempPrefix+"not-ours")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.open(withTarget("dir:/m1"))
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a clean restart removed %s: %v", other, err)
	}
}
