package control

import (
	"bytes"
	"encoding/json"
	"sync"
)

// Event types on a run's stream. docs/control-api.md lists their data.
const (
	// EventLine carries one line of the child's output, without its line
	// end: for the Claude CLI, one stream-json object.
	EventLine = "line"
	// EventLineSkipped replaces a line longer than the buffer can hold.
	EventLineSkipped = "line_skipped"
	// EventSynced says a path reached the backend.
	EventSynced = "synced"
	// EventSyncFailed says an operation on a path failed.
	EventSyncFailed = "sync_failed"
	// EventExit ends every stream: the run is over.
	EventExit = "exit"
	// EventGap is sent, without an id, to a reader that resumed after
	// events the bounded buffer no longer holds.
	EventGap = "gap"
)

// DefaultBufferBytes bounds a run's buffered events when Buffer is given
// no limit: enough for a long session's stream-json, small enough to keep
// a handful of finished runs in memory.
const DefaultBufferBytes = 32 << 20

// Event is one entry of a run's stream. IDs start at 1 and increase by one.
type Event struct {
	ID   uint64
	Type string
	Data []byte
}

// SyncedData is the data of a synced event.
type SyncedData struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// SyncFailedData is the data of a sync_failed event.
type SyncFailedData struct {
	Op        string `json:"op"`
	Path      string `json:"path"`
	Attempt   int    `json:"attempt"`
	Error     string `json:"error"`
	Permanent bool   `json:"permanent"`
}

// ExitData is the data of the exit event.
type ExitData struct {
	ExitCode int `json:"exit_code"`
	// Error says why the command never ran (not found, not executable);
	// empty when it ran, whatever its exit code.
	Error string `json:"error,omitempty"`
	// Unsynced lists the paths the final flush could not deliver.
	Unsynced []string `json:"unsynced,omitempty"`
}

// GapData is the data of a gap event.
type GapData struct {
	// Missed is how many events were dropped before the reader got them.
	Missed uint64 `json:"missed"`
}

// Buffer holds a run's events for its readers: the newest ones, up to a
// total size, so a reader that reconnects with Last-Event-ID gets what it
// missed unless it fell too far behind. Appending never waits for a
// reader: the child's output must keep flowing.
type Buffer struct {
	limit int

	mu     sync.Mutex
	events []Event // oldest first; IDs consecutive
	size   int     // bytes of Data held
	next   uint64  // ID of the next event
	closed bool
	wake   chan struct{} // closed and replaced on every append and on Close
}

// NewBuffer returns a buffer holding at most limit bytes of event data
// (the newest event is always kept). Zero or less means DefaultBufferBytes.
func NewBuffer(limit int) *Buffer {
	if limit <= 0 {
		limit = DefaultBufferBytes
	}
	return &Buffer{limit: limit, next: 1, wake: make(chan struct{})}
}

// Limit is the most bytes of event data the buffer holds.
func (b *Buffer) Limit() int { return b.limit }

// Append adds an event and returns its ID. After Close it does nothing and
// returns 0.
func (b *Buffer) Append(typ string, data []byte) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0
	}
	e := Event{ID: b.next, Type: typ, Data: data}
	b.next++
	b.events = append(b.events, e)
	b.size += len(data)
	// Drop the oldest events until the rest fits, keeping the newest.
	drop := 0
	for b.size > b.limit && drop < len(b.events)-1 {
		b.size -= len(b.events[drop].Data)
		b.events[drop] = Event{}
		drop++
	}
	b.events = b.events[drop:]
	close(b.wake)
	b.wake = make(chan struct{})
	return e.ID
}

func jsonData(v any) ([]byte, error) { return json.Marshal(v) }

// AppendJSON appends an event whose data is v encoded as JSON.
func (b *Buffer) AppendJSON(typ string, v any) uint64 {
	data, err := jsonData(v)
	if err != nil {
		// Only the package's own data types come here; they always encode.
		panic("control: unable to encode event data: " + err.Error())
	}
	return b.Append(typ, data)
}

// Close marks the stream complete: readers return once they have read
// everything.
func (b *Buffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.wake)
	}
}

// last is the ID of the newest event, zero before the first.
func (b *Buffer) last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.next - 1
}

// Since returns the events after ID after that the buffer still holds, how
// many events after it were dropped before they could be read, whether the
// stream is complete, and a channel closed when there is news.
func (b *Buffer) Since(after uint64) (events []Event, missed uint64, done bool,
	wake <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	oldest := b.next // the ID of the oldest event held, or the next one
	if len(b.events) > 0 {
		oldest = b.events[0].ID
	}
	if after+1 < oldest {
		missed = oldest - after - 1
		after = oldest - 1
	}
	if after+1 < b.next {
		start := int(after + 1 - oldest)
		events = append([]Event(nil), b.events[start:]...)
	}
	return events, missed, b.closed, b.wake
}

// LineWriter splits the child's output into lines and appends each to a
// Buffer as a line event. A line longer than the buffer's limit becomes a
// line_skipped event with its size. It is safe for one writer at a time,
// which is how the output fan-out calls it.
type LineWriter struct {
	buf     *Buffer
	pending []byte
	over    int // bytes of an over-long line dropped so far
}

// NewLineWriter returns a writer appending to buf.
func NewLineWriter(buf *Buffer) *LineWriter { return &LineWriter{buf: buf} }

// Write never fails: the pty reader behind it must keep going.
func (w *LineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.hold(p)
			break
		}
		w.hold(p[:i])
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

// Close emits a last line that had no line end.
func (w *LineWriter) Close() error {
	if len(w.pending) > 0 || w.over > 0 {
		w.emit()
	}
	return nil
}

func (w *LineWriter) hold(p []byte) {
	if w.over > 0 || len(w.pending)+len(p) > w.buf.Limit() {
		w.over += len(w.pending) + len(p)
		w.pending = w.pending[:0]
		return
	}
	w.pending = append(w.pending, p...)
}

func (w *LineWriter) emit() {
	if w.over > 0 {
		w.buf.AppendJSON(EventLineSkipped, map[string]int{"bytes": w.over})
		w.over = 0
		return
	}
	line := w.pending
	// A pty in batch mode passes LF through, but a program that writes CRLF
	// itself should not leave a CR on every line.
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	w.buf.Append(EventLine, append([]byte(nil), line...))
	w.pending = w.pending[:0]
}
