package agent

import "bytes"

// DefaultMaxLineBytes is the longest line the decoder keeps. A Write of a
// 2 MB file puts its content on one line twice, so lines of several
// megabytes are normal; this cap only stops a runaway line from holding an
// unbounded amount of memory.
const DefaultMaxLineBytes = 64 << 20

// retainBytes is the largest line buffer kept between lines. A larger one,
// left behind by a multi-megabyte line, is released so that one big Write
// does not pin its size for the rest of the session.
const retainBytes = 1 << 20

// lineFramer splits a byte stream, written in arbitrary chunks, into lines.
//
// It holds at most one line at a time. A line longer than max is not kept:
// the framer reports it once through tooLong and discards bytes up to the
// next newline, so the stream always carries on. Lines are handed to line
// without their newline, with a trailing carriage return removed and ANSI
// escape sequences stripped. The slice passed to line is only valid during
// the call.
type lineFramer struct {
	max      int
	line     func(b []byte, complete bool)
	tooLong  func()
	buf      []byte
	skipping bool // inside a line over max: discard through the next newline
}

func newLineFramer(max int, line func([]byte, bool), tooLong func()) *lineFramer {
	if max <= 0 {
		max = DefaultMaxLineBytes
	}
	return &lineFramer{max: max, line: line, tooLong: tooLong}
}

// Write consumes p. It never fails and never keeps a reference to p.
func (f *lineFramer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.add(p)
			break
		}
		f.end(p[:i])
		p = p[i+1:]
	}
	return n, nil
}

// Flush hands over the bytes after the last newline, if any, as an
// incomplete line and resets the framer for a new stream.
func (f *lineFramer) Flush() {
	if !f.skipping && len(f.buf) > 0 {
		f.emit(f.buf, false)
	}
	f.skipping = false
	f.reset()
}

// add appends part of a line whose end has not arrived yet.
func (f *lineFramer) add(part []byte) {
	if f.skipping {
		return
	}
	if len(f.buf)+len(part) > f.max {
		f.overflow()
		return
	}
	f.buf = append(f.buf, part...)
}

// end completes the current line with its last part.
func (f *lineFramer) end(part []byte) {
	if f.skipping {
		f.skipping = false
		return
	}
	if len(f.buf)+len(part) > f.max {
		f.overflow()
		f.skipping = false
		return
	}

	// A line that arrived in one chunk is handed over straight from the
	// caller's slice; copying multi-megabyte lines would double their cost.
	if len(f.buf) == 0 {
		f.emit(part, true)
		f.reset()
		return
	}
	f.buf = append(f.buf, part...)
	f.emit(f.buf, true)
	f.reset()
}

func (f *lineFramer) overflow() {
	f.skipping = true
	f.reset()
	f.tooLong()
}

// emit cleans a line and hands it over. b is either the framer's own buffer
// or a slice of the caller's chunk, which must not be modified: stripping
// escapes therefore works on the framer's buffer, copying the line there
// first when needed. Lines with escapes are short in practice (a cursor
// sequence around a JSON object), so the copy is rare and cheap.
func (f *lineFramer) emit(b []byte, complete bool) {
	b = bytes.TrimSuffix(b, []byte{'\r'})
	if bytes.IndexByte(b, esc) >= 0 {
		if len(f.buf) == 0 || &b[0] != &f.buf[0] {
			f.buf = append(f.buf[:0], b...)
			b = f.buf
		}
		b = stripEscapes(b)
	}
	f.line(b, complete)
}

func (f *lineFramer) reset() {
	if cap(f.buf) > retainBytes {
		f.buf = nil
		return
	}
	f.buf = f.buf[:0]
}

const (
	esc = 0x1b
	bel = 0x07
)

// stripEscapes removes ECMA-48 escape sequences from b in place and returns
// the shortened slice. Raw ESC bytes cannot occur inside valid JSON (control
// characters in strings must be escaped), so removing every sequence never
// changes a JSON object that a terminal sequence was glued to.
//
// Handled: CSI (ESC [ params intermediates final), string sequences (OSC,
// DCS, SOS, PM, APC: ESC ] P X ^ _ up to BEL or ESC \), sequences with
// intermediates (ESC ( B) and two-byte sequences (ESC 7, ESC =, ESC M). An
// unterminated sequence runs to the end of the line.
func stripEscapes(b []byte) []byte {
	out := b[:0]
	for i := 0; i < len(b); {
		if b[i] != esc {
			out = append(out, b[i])
			i++
			continue
		}
		i = skipEscape(b, i)
	}
	return out
}

// skipEscape returns the index just past the escape sequence at b[i].
func skipEscape(b []byte, i int) int {
	i++ // ESC
	if i >= len(b) {
		return i
	}
	switch c := b[i]; {
	case c == '[':
		i++
		for i < len(b) && b[i] >= 0x20 && b[i] <= 0x3f {
			i++ // parameter and intermediate bytes
		}
		if i < len(b) && b[i] >= 0x40 && b[i] <= 0x7e {
			i++ // final byte
		}
		return i
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		for i++; i < len(b); i++ {
			if b[i] == bel {
				return i + 1
			}
			if b[i] == esc && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	case c >= 0x20 && c <= 0x2f:
		for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f {
			i++
		}
		if i < len(b) && b[i] >= 0x30 && b[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e && c != '{':
		// A lone ESC before a JSON object is not a sequence worth eating
		// the object's opening brace for.
		return i + 1
	}
	return i
}
