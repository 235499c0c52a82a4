package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DirBackend mirrors the workspace into a local directory. Each Put writes a
// temporary file beside its target and renames it over the target, so a
// reader of the mirror sees the old content or the new, never a mix. Delete
// removes the file and then every parent directory it leaves empty, up to
// the mirror's root. Neither waits for the disk: Sync (one syncfs(2) of the
// mirror's file system) makes every operation before it durable, once per
// group of operations the queue records in its manifest.
type DirBackend struct {
	root string // absolute and clean
}

// NewDirBackend returns a backend that mirrors into root. The directory is
// created by the first Put or Check when it does not exist.
func NewDirBackend(root string) (*DirBackend, error) {
	if root == "" {
		return nil, errors.New("empty mirror directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("unable to resolve mirror directory %q: %w", root, err)
	}
	return &DirBackend{root: abs}, nil
}

func parseDirTarget(rest string) (Backend, error) { return NewDirBackend(rest) }

// Root is the mirror directory, absolute and clean.
func (d *DirBackend) Root() string { return d.root }

// tempPrefix starts the name of every temporary file, so that an operator
// who finds one after a crash knows where it came from.
const tempPrefix = ".supervisor-tmp-"

// Put implements Backend.
func (d *DirBackend) Put(ctx context.Context, rel string, content io.Reader, size int64,
	mode fs.FileMode) error {
	target, err := d.abs(rel)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// A concurrent Delete of a sibling may remove the parent directory
	// between MkdirAll and CreateTemp; recreating it a few times settles
	// that race without a lock shared by all paths.
	var tmp *os.File
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("unable to create directory for %s: %w", rel, err)
		}
		tmp, err = os.CreateTemp(filepath.Dir(target), tempPrefix+"*")
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return fmt.Errorf("unable to create temporary file for %s: %w", rel, err)
		}
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	// The content is copied in full before anything replaces the target:
	// a failing reader leaves the previous version untouched.
	if _, err := io.Copy(tmp, content); err != nil {
		return fmt.Errorf("unable to write %s: %w", rel, err)
	}
	if err := tmp.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("unable to set mode of %s: %w", rel, err)
	}
	// No fsync before the rename: Sync makes the group durable before the
	// manifest records it. What that costs: on a file system that commits
	// a rename before the data it names (not ext4's default, which flushes
	// the data of a file renamed over another), a power cut before Sync
	// can leave an empty file under a path whose older version the
	// manifest still records; the next start sends the path again unless
	// the workspace went back to exactly that older content.
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("unable to close %s: %w", rel, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("unable to replace %s: %w", rel, err)
	}
	committed = true
	return nil
}

// Delete implements Backend.
func (d *DirBackend) Delete(ctx context.Context, rel string) error {
	target, err := d.abs(rel)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unable to delete %s: %w", rel, err)
	}
	d.removeEmptyParents(filepath.Dir(target))
	return nil
}

// removeEmptyParents removes dir and its parents while they are empty,
// stopping below the mirror root. A directory that is not empty (or that
// cannot be removed for any other reason) ends the climb: a left-over empty
// directory is untidy, not wrong. rmdir, not remove: a concurrent Put may
// have renamed a file into a parent's place (a directory that became a
// file), and that file must stay.
func (d *DirBackend) removeEmptyParents(dir string) {
	for dir != d.root && strings.HasPrefix(dir, d.root+string(filepath.Separator)) {
		err := unix.Rmdir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// Sync implements Syncer: one syncfs(2) of the file system that holds the
// mirror makes every Put and Delete before it durable. It flushes the
// other dirty data of that file system too, which costs more on a disk
// shared with busy writers, and still far less than a fsync per file.
func (d *DirBackend) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	root, err := os.Open(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing was ever put; Check creates the directory
	}
	if err != nil {
		return fmt.Errorf("unable to open mirror directory: %w", err)
	}
	defer root.Close()
	if err := unix.Syncfs(int(root.Fd())); err != nil {
		return fmt.Errorf("unable to sync the mirror's file system: %w", err)
	}
	return nil
}

// List implements Lister: every file in the mirror but the temporary ones.
func (d *DirBackend) List(fn func(path string) error) error {
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !e.Type().IsRegular() || strings.HasPrefix(e.Name(), tempPrefix) {
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel))
	})
	if err != nil {
		return fmt.Errorf("unable to list the mirror: %w", err)
	}
	return nil
}

// Check implements Backend: the mirror directory exists (it is created when
// missing) and a file can be created in it.
func (d *DirBackend) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(d.root, 0o755); err != nil {
		return fmt.Errorf("unable to create mirror directory: %w", err)
	}
	probe, err := os.CreateTemp(d.root, tempPrefix+"check-*")
	if err != nil {
		return fmt.Errorf("unable to write in mirror directory: %w", err)
	}
	_ = probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return fmt.Errorf("unable to remove probe file: %w", err)
	}
	return nil
}

// abs maps a workspace-relative slash path into the mirror, refusing
// anything that could climb out of it.
func (d *DirBackend) abs(rel string) (string, error) {
	local := filepath.FromSlash(rel)
	if rel == "" || !filepath.IsLocal(local) {
		return "", fmt.Errorf("%w: %q is not a relative path inside the mirror",
			ErrPermanent, rel)
	}
	return filepath.Join(d.root, local), nil
}

// isNotDir reports an error that says a path element is a file where a
// directory was expected.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
