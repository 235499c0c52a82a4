package sync

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirBackendIsEmptyWhenItsMirrorCannotExist(t *testing.T) {
	base := t.TempDir()
	blocker := filepath.Join(base, "parent")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(base, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, root string
		want       bool
	}{
		{"missing", filepath.Join(base, "missing"), true},
		{"beneath a file", filepath.Join(blocker, "mirror"), true},
		{"holding a file", full, false},
	}
	for _, tt := range tests {
		d, err := NewDirBackend(tt.root)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d.Empty(); err != nil || got != tt.want {
			t.Errorf("%s: Empty() = %v, %v; want %v, nil", tt.name, got, err, tt.want)
		}
	}
}
