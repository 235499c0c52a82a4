package sync

import (
	"errors"
	"io/fs"
	"reflect"
	"testing"
	"time"
)

func TestManifestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{Hash: [32]byte{1, 2, 3}, Size: 42,
		ModTime: time.Unix(1700000000, 123456789), Mode: 0o640}
	for _, p := range []string{"a.txt", "d/b.txt", "gone.txt"} {
		if err := m.Put(p, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Delete("gone.txt"); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m, err = OpenManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, ok := m.Get("d/b.txt")
	if !ok || got.Hash != rec.Hash || got.Size != rec.Size ||
		!got.ModTime.Equal(rec.ModTime) || got.Mode != rec.Mode {
		t.Fatalf("reopened record = %+v (found %v), want %+v", got, ok, rec)
	}
	if _, ok := m.Get("gone.txt"); ok {
		t.Error("deleted path came back after reopen")
	}
	if m.Len() != 2 {
		t.Errorf("Len = %d, want 2", m.Len())
	}
}

func TestManifestBeneathListsOnlyTheSubtree(t *testing.T) {
	m, err := OpenManifest(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, p := range []string{"a", "a/b", "a/c/d", "ab", "a-b/c", "z"} {
		if err := m.Put(p, Record{Mode: fs.FileMode(0o644)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		dir  string
		want []string
	}{
		{"a", []string{"a/b", "a/c/d"}},
		{"a/c", []string{"a/c/d"}},
		{"z", nil},
		{"", []string{"a", "a-b/c", "a/b", "a/c/d", "ab", "z"}},
	}
	for _, tt := range tests {
		got, err := m.Beneath(tt.dir)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Beneath(%q) = %v, %v; want %v", tt.dir, got, err, tt.want)
		}
	}
}

func TestManifestHeldByAnotherOpenerIsAClearError(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := OpenManifest(dir); !errors.Is(err, ErrManifestLocked) {
		t.Fatalf("second open = %v, want ErrManifestLocked", err)
	}
}
