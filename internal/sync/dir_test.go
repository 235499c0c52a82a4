package sync

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		target  string
		wantDir string // "" when an error is expected
		wantErr error
	}{
		{target: "dir:/srv/mirror", wantDir: "/srv/mirror"},
		{target: "dir:/srv/mirror/../m", wantDir: "/srv/m"},
		{target: "dir:"},
		{target: "ftp://host/x", wantErr: ErrUnknownTarget},
		{target: "/just/a/path", wantErr: ErrUnknownTarget},
	}
	for _, tt := range tests {
		b, err := ParseTarget(tt.target)
		if tt.wantDir != "" {
			d, ok := b.(*DirBackend)
			if err != nil || !ok || d.Root() != tt.wantDir {
				t.Errorf("ParseTarget(%q) = %v, %v; want dir backend at %s",
					tt.target, b, err, tt.wantDir)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseTarget(%q) succeeded, want an error", tt.target)
			continue
		}
		if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) ||
			!strings.Contains(err.Error(), "dir:PATH")) {
			t.Errorf("ParseTarget(%q) = %v, want %v listing dir:PATH", tt.target, err, tt.wantErr)
		}
	}
}

func newDirBackend(t *testing.T) (*DirBackend, string) {
	root := filepath.Join(t.TempDir(), "mirror")
	d, err := NewDirBackend(root)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

func TestDirBackendPutCreatesParentsAndKeepsPermissionBits(t *testing.T) {
	d, root := newDirBackend(t)
	ctx := context.Background()
	if err := d.Put(ctx, "a/b/run.sh", strings.NewReader("#!/bin/sh"), 9, 0o750); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(root, "a/b/run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o750 {
		t.Errorf("mode = %v, want 0750", info.Mode().Perm())
	}
	if got := tree(t, root); !reflect.DeepEqual(got, map[string]string{"a/b/run.sh": "#!/bin/sh"}) {
		t.Errorf("mirror = %v, want only a/b/run.sh and no temporary file", got)
	}
}

func TestDirBackendPutWithFailingReaderKeepsThePreviousVersion(t *testing.T) {
	d, root := newDirBackend(t)
	ctx := context.Background()
	if err := d.Put(ctx, "a.txt", strings.NewReader("old"), 3, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := io.MultiReader(strings.NewReader("new, half"), iotest.ErrReader(io.ErrUnexpectedEOF))
	if err := d.Put(ctx, "a.txt", broken, 100, 0o644); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if got := tree(t, root); !reflect.DeepEqual(got, map[string]string{"a.txt": "old"}) {
		t.Errorf("mirror = %v, want the old a.txt and no temporary file", got)
	}
}

func TestDirBackendDeleteRemovesTheEmptyParentsItLeaves(t *testing.T) {
	d, root := newDirBackend(t)
	ctx := context.Background()
	for _, p := range []string{"a/b/c.txt", "a/x.txt"} {
		if err := d.Put(ctx, p, strings.NewReader("x"), 1, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Delete(ctx, "a/b/c.txt"); err != nil {
		t.Fatal(err)
	}
	if got := dirs(t, root); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("directories = %v, want [a] (a/b emptied, a still holds x.txt)", got)
	}
	if err := d.Delete(ctx, "a/x.txt"); err != nil {
		t.Fatal(err)
	}
	if got := dirs(t, root); len(got) != 0 {
		t.Errorf("directories = %v, want none", got)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("mirror root removed: %v", err)
	}
}

func TestDirBackendDeleteOfAMissingFileSucceeds(t *testing.T) {
	d, _ := newDirBackend(t)
	if err := d.Delete(context.Background(), "never/was.txt"); err != nil {
		t.Fatalf("Delete of a missing file = %v, want success", err)
	}
}

func TestDirBackendRefusesPathsOutsideTheMirror(t *testing.T) {
	d, _ := newDirBackend(t)
	ctx := context.Background()
	for _, p := range []string{"", "../escape", "/etc/passwd", "a/../../b"} {
		if err := d.Put(ctx, p, strings.NewReader(""), 0, 0o644); !errors.Is(err, ErrPermanent) {
			t.Errorf("Put(%q) = %v, want ErrPermanent", p, err)
		}
		if err := d.Delete(ctx, p); !errors.Is(err, ErrPermanent) {
			t.Errorf("Delete(%q) = %v, want ErrPermanent", p, err)
		}
	}
}

func TestDirBackendCheckCreatesTheMirrorAndLeavesNoTrace(t *testing.T) {
	d, root := newDirBackend(t)
	if err := d.Check(context.Background()); err != nil {
		t.Fatalf("Check = %v", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Fatalf("mirror after Check: %v entries, err %v; want empty and present", len(entries), err)
	}

	blocked, _ := NewDirBackend(filepath.Join(root, "file", "below"))
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := blocked.Check(context.Background()); err == nil {
		t.Error("Check under a regular file succeeded, want an error")
	}
}
