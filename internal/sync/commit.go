package sync

import (
	"context"
	"fmt"
	stdsync "sync"

	bolt "go.etcd.io/bbolt"
)

// manifestUpdate is what one finished operation changes in the manifest.
type manifestUpdate struct {
	path   string
	record Record // what a put sent; unused by a delete
	delete bool   // forget path instead of recording it
}

// pendingUpdate is an update waiting for its group's commit, with the
// operation's continuation.
type pendingUpdate struct {
	update manifestUpdate
	done   func(error)
}

// committer records finished operations in the manifest in groups. Every
// update handed over while a commit is under way joins the next group, so a
// burst costs one backend sync and one bbolt transaction per group rather
// than per file, and a lone write pays for one of each, as before, with no
// delay added to wait for company.
//
// A group is committed in two steps, in this order: the backend makes every
// operation of the group durable (Syncer), then one transaction records
// them. The manifest therefore never claims a file that a crash could still
// take from the mirror; a crash between the steps leaves operations the
// manifest does not know about, and the next start repeats them.
type committer struct {
	manifest *Manifest
	// durable makes the backend's finished operations durable; nil when a
	// backend's Put and Delete are durable when they return.
	durable func(context.Context) error

	mu      stdsync.Mutex
	cond    *stdsync.Cond // signalled when pending grows or closed is set
	pending []pendingUpdate
	closed  bool
	stopped chan struct{}
}

func newCommitter(m *Manifest, b Backend) *committer {
	c := &committer{manifest: m, stopped: make(chan struct{})}
	c.cond = stdsync.NewCond(&c.mu)
	if s, ok := b.(Syncer); ok {
		c.durable = s.Sync
	}
	return c
}

// add hands u over to the next group. done is called from the committer's
// goroutine once that group is committed (nil) or has failed; it must not
// call add itself.
func (c *committer) add(u manifestUpdate, done func(error)) {
	c.mu.Lock()
	c.pending = append(c.pending, pendingUpdate{update: u, done: done})
	c.mu.Unlock()
	c.cond.Signal()
}

// commitNow adds u and waits for its group's commit.
func (c *committer) commitNow(u manifestUpdate) error {
	result := make(chan error, 1)
	c.add(u, func(err error) { result <- err })
	return <-result
}

// run commits groups until stop is called and nothing is left pending.
func (c *committer) run() {
	defer close(c.stopped)
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && !c.closed {
			c.cond.Wait()
		}
		group := c.pending
		c.pending = nil
		c.mu.Unlock()
		if len(group) == 0 {
			return // closed and drained
		}

		err := c.commit(group)
		for _, p := range group {
			p.done(err)
		}
	}
}

// stop commits what is pending and ends run. Call it once nothing can add
// any more.
func (c *committer) stop() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Signal()
	<-c.stopped
}

// commit makes one group durable, then records it. A failure fails the
// whole group: none of its updates is in the manifest, and each operation
// is retried.
func (c *committer) commit(group []pendingUpdate) error {
	// The operations already happened; a sync is not cut short because
	// the queue is stopping, or the manifest would miss work that is done.
	if c.durable != nil {
		if err := c.durable(context.Background()); err != nil {
			return fmt.Errorf("unable to make %d operations durable in the backend: %w",
				len(group), err)
		}
	}
	updates := make([]manifestUpdate, len(group))
	for i, p := range group {
		updates[i] = p.update
	}
	return c.manifest.apply(updates)
}

// apply records updates in one transaction, then in the index.
func (m *Manifest) apply(updates []manifestUpdate) error {
	err := m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(manifestBucket)
		for _, u := range updates {
			var err error
			if u.delete {
				err = b.Delete([]byte(u.path))
			} else {
				err = b.Put([]byte(u.path), u.record.encode())
			}
			if err != nil {
				return fmt.Errorf("%s: %w", u.path, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unable to record %d operations in manifest: %w", len(updates), err)
	}
	m.mu.Lock()
	for _, u := range updates {
		if u.delete {
			delete(m.index, u.path)
		} else {
			m.index[u.path] = toIndex(u.record)
		}
	}
	m.mu.Unlock()
	return nil
}

// Lister is a backend that can list the paths it holds. After a crash the
// queue compares that list with the manifest (see adoptUnrecorded).
type Lister interface {
	List(fn func(path string) error) error
}

// unknownContent records a path the backend holds with content nobody
// knows: it matches no file, so the next scan sends the workspace's file
// again, or deletes the backend's copy when the workspace has none.
var unknownContent = Record{Size: -1}

// adoptAfterCrash records, as unknownContent, every path the backend holds
// that the manifest does not know, when the last run on this manifest died
// (it left the manifest marked open) while syncing to this same target.
// These are the operations that finished before their group was committed;
// a file deleted from the workspace meanwhile would otherwise stay in the
// backend for good. Another target's files are never adopted: they may not
// be the supervisor's to delete. It runs before the manifest is bound.
func adoptAfterCrash(m *Manifest, cfg Config) error {
	l, ok := cfg.Backend.(Lister)
	if !ok {
		return nil
	}
	unclean, err := m.leftOpen()
	if err != nil || !unclean {
		return err
	}
	if target, err := m.Target(); err != nil || target != cfg.Target {
		return err
	}
	var updates []manifestUpdate
	err = l.List(func(path string) error {
		if _, ok := m.Get(path); !ok {
			updates = append(updates, manifestUpdate{path: path, record: unknownContent})
		}
		return nil
	})
	if err != nil || len(updates) == 0 {
		return err
	}
	if err := m.apply(updates); err != nil {
		return err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("the last run did not stop cleanly; files it synced without "+
			"recording them are checked again", "files", len(updates))
	}
	return nil
}

// leftOpen reports whether the last queue on this manifest did not close it.
func (m *Manifest) leftOpen() (bool, error) {
	open := false
	err := m.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			open = b.Get(openKey) != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("unable to read the manifest's open mark: %w", err)
	}
	return open, nil
}
