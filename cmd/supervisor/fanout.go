package main

import (
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// fanout copies the child's output to every destination in order. A
// destination that fails (a reader of stdout that went away, a full disk
// under --tee) is logged once and dropped, so the others keep receiving
// every byte. A destination that stalls stalls the others: the supervisor
// keeps stdout and --tee in one fanout and the agent decoder in another,
// which the child feeds as it reads, so that the change hints never wait
// for a reader of stdout.
type fanout struct {
	log  hclog.Logger
	mu   sync.Mutex
	dsts []destination
}

type destination struct {
	name   string
	w      io.Writer
	failed bool
}

func newFanout(log hclog.Logger) *fanout { return &fanout{log: log} }

func (f *fanout) add(name string, w io.Writer) {
	f.dsts = append(f.dsts, destination{name: name, w: w})
}

// Write always reports success: the pty reader behind it must keep going.
func (f *fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.dsts {
		d := &f.dsts[i]
		if d.failed {
			continue
		}
		if _, err := d.w.Write(p); err != nil {
			d.failed = true
			f.log.Error("unable to write the child's output; dropping this destination",
				"destination", d.name, "error", err)
		}
	}
	return len(p), nil
}
