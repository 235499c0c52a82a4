package sync

import (
	"os"
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
