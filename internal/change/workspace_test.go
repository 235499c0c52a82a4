package change

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func newTestWorkspace(t testing.TB, dir string) *Workspace {
	t.Helper()
	w, err := NewWorkspace(dir)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWorkspaceRel(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := newTestWorkspace(t, root)

	// "$ROOT" stands for the workspace root; want "!" means ErrOutside.
	cases := []struct{ base, p, want string }{
		{"", "$ROOT/a.go", "a.go"},
		{"", "$ROOT/src/pkg/a.go", "src/pkg/a.go"},
		{"", "$ROOT", ""},
		{"", "$ROOT/", ""},
		{"", "$ROOT//src///a.go/", "src/a.go"},
		{"", "$ROOT/src/../b.go", "b.go"},
		{"", "$ROOT/./c.go", "c.go"},
		{"", "rel/a.go", "rel/a.go"},
		{"", "./a.go", "a.go"},
		{"", ".", ""},
		{"$ROOT/sub", "a.go", "sub/a.go"},
		{"$ROOT/sub", "../a.go", "a.go"},
		{"$ROOT/sub", "/etc/hosts", "!"},
		{"$ROOT/sub", "$ROOT/x.go", "x.go"},
		{"$ROOT/sub", "../../a.go", "!"},
		{"/elsewhere", "a.go", "!"},
		{"", "$ROOT/../a.go", "!"},
		{"", "$ROOT-sibling/a.go", "!"},
		{"", "${ROOT}x", "!"},
		{"", "/etc/passwd", "!"},
		{"", "/", "!"},
		{"", "", "!"},
		{"", "a\x00b", "!"},
		{"$ROOT/\x00", "a", "!"},
		{"", "..", "!"},
	}
	for _, tc := range cases {
		base := strings.ReplaceAll(tc.base, "$ROOT", root)
		p := strings.NewReplacer("${ROOT}", root, "$ROOT", root).Replace(tc.p)
		got, err := w.Rel(base, p)
		if tc.want == "!" {
			if !errors.Is(err, ErrOutside) {
				t.Errorf("Rel(%q, %q) = %q, %v; want ErrOutside", tc.base, tc.p, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Rel(%q, %q) = %q, %v; want %q", tc.base, tc.p, got, err, tc.want)
		}
	}
}

// A workspace reached through a symlink answers for paths spelled either
// way, as a process that resolved its cwd reports them.
func TestWorkspaceRelAcceptsBothSpellingsOfASymlinkedRoot(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	w := newTestWorkspace(t, link)
	if w.Root() != link {
		t.Errorf("Root() = %q, want the configured spelling %q", w.Root(), link)
	}
	for _, p := range []string{link + "/a/b.go", real + "/a/b.go"} {
		if got, err := w.Rel("", p); err != nil || got != "a/b.go" {
			t.Errorf("Rel(%q) = %q, %v; want a/b.go", p, got, err)
		}
	}
	if got, err := w.Rel(real, "c.go"); err != nil || got != "c.go" {
		t.Errorf("Rel relative to the resolved root = %q, %v; want c.go", got, err)
	}
}

func TestNewWorkspaceNeedsAnExistingDirectory(t *testing.T) {
	if _, err := NewWorkspace(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("NewWorkspace of a missing directory succeeded")
	}
}

func TestWorkspaceAbs(t *testing.T) {
	w := newTestWorkspace(t, t.TempDir())
	if got := w.Abs(""); got != w.Root() {
		t.Errorf("Abs(\"\") = %q, want the root", got)
	}
	if got, want := w.Abs("a/b.go"), filepath.Join(w.Root(), "a", "b.go"); got != want {
		t.Errorf("Abs(a/b.go) = %q, want %q", got, want)
	}
}

func TestIsBeneath(t *testing.T) {
	cases := []struct {
		rel, dir string
		want     bool
	}{
		{"a/b", "", true},
		{"", "", true},
		{"a", "a", true},
		{"a/b/c", "a/b", true},
		{"ab", "a", false},
		{"a", "a/b", false},
		{"b/a", "a", false},
		{"", "a", false},
	}
	for _, tc := range cases {
		if got := IsBeneath(tc.rel, tc.dir); got != tc.want {
			t.Errorf("IsBeneath(%q, %q) = %v, want %v", tc.rel, tc.dir, got, tc.want)
		}
	}
}

func TestParent(t *testing.T) {
	for rel, want := range map[string]string{"a": "", "a/b": "a", "a/b/c.go": "a/b"} {
		if got := Parent(rel); got != want {
			t.Errorf("Parent(%q) = %q, want %q", rel, got, want)
		}
	}
}

// FuzzWorkspaceRel checks that Rel either refuses a path as outside or
// returns a clean relative key that names a path inside the root and maps
// back to itself.
func FuzzWorkspaceRel(f *testing.F) {
	for _, seed := range [][2]string{
		{"", "$ROOT/a.go"}, {"$ROOT/sub", "../a"}, {"$ROOT", "../../etc"},
		{"", "$ROOT-x/a"}, {"/", "a/./b//c/.."}, {"", "a\x00"}, {"$ROOT/a", "..."},
	} {
		f.Add(seed[0], seed[1])
	}
	root, err := filepath.EvalSymlinks(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	w := newTestWorkspace(f, root)
	f.Fuzz(func(t *testing.T, base, p string) {
		base = strings.ReplaceAll(base, "$ROOT", root)
		p = strings.ReplaceAll(p, "$ROOT", root)
		rel, err := w.Rel(base, p)
		if err != nil {
			if !errors.Is(err, ErrOutside) {
				t.Fatalf("Rel(%q, %q): error %v is not ErrOutside", base, p, err)
			}
			return
		}
		if rel != "" && (path.Clean(rel) != rel || path.IsAbs(rel) ||
			rel == ".." || strings.HasPrefix(rel, "../") || rel == ".") {
			t.Fatalf("Rel(%q, %q) = %q: not a clean relative key", base, p, rel)
		}
		abs := w.Abs(rel)
		if abs != root && !strings.HasPrefix(abs, root+string(filepath.Separator)) {
			t.Fatalf("Rel(%q, %q) = %q, which lies outside %s", base, p, rel, root)
		}
		if back, err := w.Rel("", abs); err != nil || back != rel {
			t.Fatalf("Rel(Abs(%q)) = %q, %v; want the key back", rel, back, err)
		}
	})
}
