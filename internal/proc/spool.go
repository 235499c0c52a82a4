package proc

import (
	"errors"
	"io"
	"sync"
)

// DefaultSpoolLimit bounds the output held in memory between the reader of
// the pty and a slow Output: enough for a few seconds of a busy agent, small
// beside the memory of the agent itself.
const DefaultSpoolLimit = 8 << 20

// errSpoolClosed is returned by a write after close: a reader abandoned at
// the drain deadline may still hold data.
var errSpoolClosed = errors.New("output spool is closed")

// spool decouples the reader of the child's output from the Output writer.
// Writes copy into memory and return at once until limit bytes are held;
// beyond that they wait for the writer to catch up, so a stalled Output
// slows the child instead of growing memory without bound. Abandon ends
// that wait for good once the child is gone and nobody should wait on a
// stalled Output any more.
type spool struct {
	w     io.Writer
	limit int

	mu        sync.Mutex
	ready     *sync.Cond // chunks became non-empty, or the spool closed
	space     *sync.Cond // held dropped below limit, or the spool was abandoned
	chunks    [][]byte
	size      int // bytes in chunks
	inFlight  int // bytes of the chunk being written now
	closed    bool
	abandoned bool
	dropped   int64
	writeErr  error

	flushed       chan struct{}
	abandonedDone chan struct{}
}

// newSpool returns a spool writing to w and starts its writer goroutine,
// which ends once the spool is closed and emptied.
func newSpool(w io.Writer, limit int) *spool {
	if limit <= 0 {
		limit = DefaultSpoolLimit
	}
	s := &spool{w: w, limit: limit, flushed: make(chan struct{}),
		abandonedDone: make(chan struct{})}
	s.ready = sync.NewCond(&s.mu)
	s.space = sync.NewCond(&s.mu)
	go s.drain()
	return s
}

// Write queues a copy of p. It blocks only while the spool is full. After
// Abandon it counts p as dropped and returns at once.
func (s *spool) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	chunk := append([]byte(nil), p...)

	s.mu.Lock()
	defer s.mu.Unlock()
	for s.size+s.inFlight >= s.limit && !s.closed && !s.abandoned {
		s.space.Wait()
	}
	switch {
	case s.abandoned:
		s.dropped += int64(len(p))
		return len(p), nil
	case s.closed:
		return 0, errSpoolClosed
	}
	s.chunks = append(s.chunks, chunk)
	s.size += len(chunk)
	s.ready.Signal()
	return len(p), nil
}

// Close stops accepting writes; what is queued is still written.
func (s *spool) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ready.Broadcast()
	s.space.Broadcast()
}

// Abandon gives up on the Output writer: what is queued, and the chunk a
// stalled Write holds, are dropped and counted, later writes are dropped
// too, and Abandoned is closed. The writer's goroutine may stay blocked in
// a Write that never returns (a pipe or FIFO nobody reads cannot be
// interrupted); nobody waits for it any more. Abandoning a spool that has
// flushed does nothing.
func (s *spool) Abandon() {
	s.mu.Lock()
	select {
	case <-s.flushed:
		s.mu.Unlock()
		return
	default:
	}
	if s.abandoned {
		s.mu.Unlock()
		return
	}
	s.abandoned = true
	s.dropped += int64(s.size + s.inFlight)
	s.chunks, s.size, s.inFlight = nil, 0, 0
	s.mu.Unlock()
	close(s.abandonedDone)
	s.ready.Broadcast()
	s.space.Broadcast()
}

// Flushed is closed once the spool is closed and everything queued has
// been written (or discarded after a write error).
func (s *spool) Flushed() <-chan struct{} { return s.flushed }

// Abandoned is closed by Abandon.
func (s *spool) Abandoned() <-chan struct{} { return s.abandonedDone }

// Dropped returns how many bytes Abandon dropped, with those written after
// it.
func (s *spool) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Err returns the first error from the Output writer. After it, the spool
// discards output rather than stop the reader: the child must not block on
// a consumer that went away.
func (s *spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeErr
}

func (s *spool) drain() {
	defer close(s.flushed)
	// The Output writers (stdout, the decoder) run on this goroutine.
	defer RestoreOnPanic()
	for {
		s.mu.Lock()
		for len(s.chunks) == 0 && !s.closed && !s.abandoned {
			s.ready.Wait()
		}
		if len(s.chunks) == 0 || s.abandoned {
			s.mu.Unlock()
			return
		}
		chunk := s.chunks[0]
		s.chunks[0] = nil
		s.chunks = s.chunks[1:]
		s.size -= len(chunk)
		s.inFlight = len(chunk)
		failed := s.writeErr != nil
		s.mu.Unlock()

		var err error
		if !failed {
			_, err = s.w.Write(chunk)
		}

		s.mu.Lock()
		if !s.abandoned {
			s.inFlight = 0
		}
		if err != nil && s.writeErr == nil {
			s.writeErr = err
		}
		s.mu.Unlock()
		s.space.Broadcast()
	}
}
