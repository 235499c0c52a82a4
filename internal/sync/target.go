package sync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// The manifest says what one backend holds. Used with another backend, or
// with a mirror that was wiped, it would claim files are synced that the
// backend has never seen, and they would never be sent. So the manifest
// records which target it describes, and starts over when that changes.

// metaBucket holds the manifest's own facts, apart from the files.
var metaBucket = []byte("meta")

// targetKey names the target the records describe.
var targetKey = []byte("target")

// Target returns the sync target the manifest was last bound to, "" when
// none.
func (m *Manifest) Target() (string, error) {
	var target string
	err := m.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			target = string(b.Get(targetKey))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("unable to read the manifest's target: %w", err)
	}
	return target, nil
}

// Bind ties the manifest to target, an identity of the backend without
// secrets in it. When the manifest describes another target, or any target
// while fresh says the backend holds nothing, every record is dropped so
// that the whole tree is sent again; Bind reports that with reset.
func (m *Manifest) Bind(target string, fresh bool) (reset bool, err error) {
	old, err := m.Target()
	if err != nil {
		return false, err
	}
	reset = m.Len() > 0 && (old != target || fresh)
	if reset {
		if err := m.Replace(map[string]Record{}); err != nil {
			return false, err
		}
	}
	err = m.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return b.Put(targetKey, []byte(target))
	})
	if err != nil {
		return false, fmt.Errorf("unable to record the manifest's target: %w", err)
	}
	return reset, nil
}

// Emptiness is implemented by backends that can tell cheaply that they hold
// nothing at all, such as a mirror directory that is missing or empty.
type Emptiness interface {
	Empty() (bool, error)
}

// Empty implements Emptiness: the mirror directory is missing or has no
// entries. A mirror emptied by hand is then filled again from scratch.
func (d *DirBackend) Empty() (bool, error) {
	f, err := os.Open(d.root)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		// A file where a parent directory should be also means no mirror:
		// the backend's check reports it, and the queue must still start.
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("unable to read mirror directory: %w", err)
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(1)
	if err != nil && len(names) == 0 {
		return true, nil
	}
	return false, nil
}

// bindManifest ties the manifest to cfg's target and logs when that makes
// every file go out again.
func bindManifest(m *Manifest, cfg Config) error {
	fresh := false
	if e, ok := cfg.Backend.(Emptiness); ok {
		empty, err := e.Empty()
		if err != nil {
			return err
		}
		fresh = empty
	}
	records := m.Len()
	reset, err := m.Bind(cfg.Target, fresh)
	if err != nil || !reset || cfg.Logger == nil {
		return err
	}
	reason := "the manifest describes another sync target"
	if fresh {
		reason = "the backend holds nothing"
	}
	cfg.Logger.Warn("forgot what was synced; every file will be sent again",
		"reason", reason, "records", records)
	return nil
}

// openKey is set while a queue uses the manifest. Found set at open, it
// means the last supervisor died without closing it (SIGKILL, a crash), so
// the backend may hold debris of operations cut short.
var openKey = []byte("open")

// markOpen sets openKey and reports whether it was already set.
func (m *Manifest) markOpen() (unclean bool, err error) {
	err = m.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		unclean = b.Get(openKey) != nil
		return b.Put(openKey, []byte{1})
	})
	if err != nil {
		return false, fmt.Errorf("unable to mark the manifest open: %w", err)
	}
	return unclean, nil
}

// markClosed clears openKey: this supervisor stops cleanly.
func (m *Manifest) markClosed() error {
	err := m.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			return b.Delete(openKey)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unable to mark the manifest closed: %w", err)
	}
	return nil
}

// Recoverer is implemented by backends that can clear what an operation
// cut short by a crash left behind. It runs before any operation starts.
type Recoverer interface {
	Recover() (removed int, err error)
}

// Recover implements Recoverer: it removes the temporary files of puts that
// a killed supervisor never renamed into place, which would otherwise stay
// in the mirror for good.
func (d *DirBackend) Recover() (int, error) {
	removed := 0
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("unable to clear interrupted copies from the mirror: %w", err)
	}
	return removed, nil
}

// recoverAfterCrash lets the backend clear debris when the last supervisor
// using this manifest did not stop cleanly.
func recoverAfterCrash(m *Manifest, cfg Config) error {
	unclean, err := m.markOpen()
	if err != nil || !unclean {
		return err
	}
	r, ok := cfg.Backend.(Recoverer)
	if !ok {
		return nil
	}
	removed, err := r.Recover()
	if err != nil {
		return err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("the last run did not stop cleanly; cleared its interrupted copies",
			"removed", removed)
	}
	return nil
}
