package change

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// ErrOutside reports a path that does not lie inside the workspace.
var ErrOutside = errors.New("path is outside the workspace")

// Workspace names the tree that is watched and synced and converts between
// absolute paths and the workspace-relative slash paths that key the queue.
type Workspace struct {
	root  string // absolute and clean, as configured
	real  string // root with symlinks resolved; equal to root when it has none
	roots []string
}

// NewWorkspace returns the workspace rooted at dir. The directory must exist:
// its symlinks are resolved so that paths reported through either spelling
// (/tmp/w and /private/tmp/w, say) name the same files.
func NewWorkspace(dir string) (*Workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("unable to resolve workspace %q: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("unable to resolve workspace %q: %w", dir, err)
	}
	w := &Workspace{root: abs, real: real, roots: []string{abs}}
	if real != abs {
		w.roots = append(w.roots, real)
	}
	return w, nil
}

// Root is the workspace directory as configured, absolute and clean.
func (w *Workspace) Root() string { return w.root }

// Abs returns the absolute filesystem path of a workspace-relative path.
func (w *Workspace) Abs(rel string) string {
	if rel == "" {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// Rel turns p into the queue's key: a clean, slash-separated path relative
// to the workspace root, "" for the root itself. A relative p is taken
// relative to base (the agent's working directory), or to the root when base
// is empty. Symlinks inside the path are not resolved: the key names the
// directory entry, and the sync queue refuses to follow links.
//
// Rel returns ErrOutside for anything that does not lie beneath the root,
// including paths that climb out with "..".
func (w *Workspace) Rel(base, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: %q", ErrOutside, p)
	}
	if !filepath.IsAbs(p) {
		if base == "" {
			base = w.root
		}
		p = filepath.Join(base, p)
	}
	// No file name holds a NUL byte; check after the join, since base comes
	// from the agent's output as much as p does.
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: %q", ErrOutside, p)
	}
	p = filepath.Clean(p)
	for _, root := range w.roots {
		if rel, ok := under(root, p); ok {
			return rel, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrOutside, p)
}

// under reports whether clean absolute p is root or lies beneath it, and
// returns its relative slash path.
func under(root, p string) (string, bool) {
	if p == root {
		return "", true
	}
	prefix := root
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	return filepath.ToSlash(p[len(prefix):]), true
}

// IsBeneath reports whether rel equals dir or lies beneath it; the root ("")
// contains everything.
func IsBeneath(rel, dir string) bool {
	if dir == "" || rel == dir {
		return true
	}
	return strings.HasPrefix(rel, dir) && rel[len(dir)] == '/'
}

// Parent returns the directory that contains rel, "" for top-level entries.
func Parent(rel string) string {
	dir := path.Dir(rel)
	if dir == "." {
		return ""
	}
	return dir
}
