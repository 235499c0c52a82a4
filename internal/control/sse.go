package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveEvents streams a run's events as server-sent events, starting after
// the Last-Event-ID header (or the last_event_id query parameter, for
// clients that cannot set headers), and ends after the exit event.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.lookup(r.PathValue("id"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	after, err := lastEventID(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		s.writeError(w, errors.New("unable to stream: the connection cannot flush"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Proxies that buffer responses (nginx) would hold the stream back.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	ticker := time.NewTicker(keepAlive)
	defer ticker.Stop()
	bw := bufio.NewWriter(w)
	for {
		events, missed, done, wake := run.events.Since(after)
		if missed > 0 {
			data, _ := jsonData(GapData{Missed: missed})
			writeEvent(bw, Event{Type: EventGap, Data: data})
		}
		for _, e := range events {
			writeEvent(bw, e)
			after = e.ID
		}
		if err := bw.Flush(); err != nil {
			return
		}
		flusher.Flush()
		if done && len(events) == 0 {
			return
		}
		select {
		case <-wake:
		case <-ticker.C:
			_, _ = io.WriteString(bw, ": keep-alive\n\n")
		case <-r.Context().Done():
			return
		}
	}
}

func lastEventID(r *http.Request) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: Last-Event-ID %q is not an event id", ErrInvalid, v)
	}
	return id, nil
}

// writeEvent writes one event in the text/event-stream format. Data with
// line ends (a non-JSON output line holding a CR) is split over several
// data fields, which a reader joins with LF.
func writeEvent(w *bufio.Writer, e Event) {
	if e.ID != 0 {
		_, _ = fmt.Fprintf(w, "id: %d\n", e.ID)
	}
	_, _ = fmt.Fprintf(w, "event: %s\n", e.Type)
	data := e.Data
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		writeData(w, data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	writeData(w, data)
	_ = w.WriteByte('\n')
}

func writeData(w *bufio.Writer, p []byte) {
	_, _ = w.WriteString("data: ")
	_, _ = w.Write(p)
	_ = w.WriteByte('\n')
}

// ReadEvents parses a text/event-stream body and calls fn for every event
// in order until the body ends or fn returns an error. Comments and
// unknown fields are skipped, as the format requires.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		e       Event
		data    []byte
		hasData bool
	)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			// A blank line dispatches the event gathered so far.
			if hasData || e.Type != "" {
				e.Data = data
				if e.Type == "" {
					e.Type = "message"
				}
				if err := fn(e); err != nil {
					return err
				}
			}
			e, data, hasData = Event{}, nil, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			if id, err := strconv.ParseUint(string(value), 10, 64); err == nil {
				e.ID = id
			}
		case "event":
			e.Type = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
}
