package proc

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// gatedWriter holds every Write until the gate opens.
type gatedWriter struct {
	gate chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestSpoolAcceptsOutputWhileWriterIsStalledUpToItsLimit(t *testing.T) {
	w := &gatedWriter{gate: make(chan struct{})}
	s := newSpool(w, 1000)

	// 1000 bytes fit, though the writer has taken nothing: these writes must
	// return without the gate opening, or the test deadlocks.
	for i := range 10 {
		if _, err := fmt.Fprintf(s, "%0100d", i); err != nil {
			t.Fatal(err)
		}
	}

	// The spool is at its limit: the next write waits for the writer.
	wrote := make(chan struct{})
	go func() {
		_, _ = s.Write(bytes.Repeat([]byte("x"), 10))
		close(wrote)
	}()
	select {
	case <-wrote:
		t.Fatal("a write past the limit returned while the writer was stalled")
	case <-time.After(50 * time.Millisecond):
	}

	close(w.gate)
	<-wrote
	s.Close()
	<-s.Flushed()
	if got := w.buf.Len(); got != 1000+10 {
		t.Errorf("writer got %d bytes, want %d", got, 1000+10)
	}
}

func TestSpoolKeepsOrderAndFlushesEverythingOnClose(t *testing.T) {
	var want bytes.Buffer
	w := &gatedWriter{gate: make(chan struct{})}
	close(w.gate)
	s := newSpool(w, 64)
	for i := range 1000 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := s.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	<-s.Flushed()
	if !bytes.Equal(w.buf.Bytes(), want.Bytes()) {
		t.Error("spooled output differs from what was written")
	}
	if _, err := s.Write([]byte("late")); !errors.Is(err, errSpoolClosed) {
		t.Errorf("Write after Close = %v, want errSpoolClosed", err)
	}
}

func TestSpoolDiscardsOutputAfterAWriteErrorAndReportsIt(t *testing.T) {
	broken := errors.New("broken pipe")
	s := newSpool(failingWriter{broken}, 10)
	// Far past the limit: writes keep succeeding, so the child never blocks
	// on a consumer that went away.
	for range 100 {
		if _, err := s.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	<-s.Flushed()
	if err := s.Err(); !errors.Is(err, broken) {
		t.Errorf("Err = %v, want %v", err, broken)
	}
}
