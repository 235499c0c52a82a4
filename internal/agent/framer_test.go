package agent

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// frame is what the framer hands over: a line and whether its newline came.
type frame struct {
	text     string
	complete bool
}

func (f frame) String() string { return fmt.Sprintf("%q complete=%v", f.text, f.complete) }

// frameAll feeds chunks to a framer with the given cap, flushes it, and
// returns the lines and the number of lines over the cap.
func frameAll(max int, chunks ...[]byte) ([]frame, int) {
	var frames []frame
	tooLong := 0
	f := newLineFramer(max,
		func(b []byte, complete bool) { frames = append(frames, frame{string(b), complete}) },
		func() { tooLong++ })
	for _, c := range chunks {
		f.Write(c)
	}
	f.Flush()
	return frames, tooLong
}

func split(chunks ...string) [][]byte {
	out := make([][]byte, len(chunks))
	for i, c := range chunks {
		out[i] = []byte(c)
	}
	return out
}

func TestLineFramer(t *testing.T) {
	cases := []struct {
		name    string
		max     int
		chunks  []string
		want    []frame
		tooLong int
	}{{
		name:   "lines in one chunk",
		chunks: []string{"a\nbb\n"},
		want:   []frame{{"a", true}, {"bb", true}},
	}, {
		name:   "a line across chunks",
		chunks: []string{"{\"ty", "pe\":", "1}\n"},
		want:   []frame{{`{"type":1}`, true}},
	}, {
		name:   "empty lines are handed over empty",
		chunks: []string{"\n\r\n"},
		want:   []frame{{"", true}, {"", true}},
	}, {
		name:   "CRLF loses its CR; a CR inside the line stays",
		chunks: []string{"a\r", "\nb\rc\r\n"},
		want:   []frame{{"a", true}, {"b\rc", true}},
	}, {
		name:   "escapes are stripped, also across chunks",
		chunks: []string{"\x1b[?2", "5l{}\x1b[?25h\n"},
		want:   []frame{{"{}", true}},
	}, {
		name:   "bytes after the last newline are an incomplete line",
		chunks: []string{"a\nbc"},
		want:   []frame{{"a", true}, {"bc", false}},
	}, {
		name:   "a line at the cap is kept",
		max:    3,
		chunks: []string{"abc\n"},
		want:   []frame{{"abc", true}},
	}, {
		name:    "a line over the cap in one chunk is skipped",
		max:     3,
		chunks:  []string{"abcd\nok\n"},
		want:    []frame{{"ok", true}},
		tooLong: 1,
	}, {
		name:    "a line over the cap across chunks is skipped to its newline",
		max:     3,
		chunks:  []string{"ab", "cd", "efgh", "ij\nok\n"},
		want:    []frame{{"ok", true}},
		tooLong: 1,
	}, {
		name:    "an unfinished line over the cap is counted, not flushed",
		max:     3,
		chunks:  []string{"ok\nabcdef"},
		want:    []frame{{"ok", true}},
		tooLong: 1,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, tooLong := frameAll(tc.max, split(tc.chunks...)...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("frames = %v, want %v", got, tc.want)
			}
			if tooLong != tc.tooLong {
				t.Errorf("too long = %d, want %d", tooLong, tc.tooLong)
			}
		})
	}
}

func TestLineFramerDoesNotModifyTheCallersChunk(t *testing.T) {
	chunk := []byte("\x1b[?25l{\"a\":1}\r\n")
	orig := bytes.Clone(chunk)
	frameAll(0, chunk)
	if !bytes.Equal(chunk, orig) {
		t.Errorf("chunk changed to %q", chunk)
	}
}

func TestLineFramerReleasesBufferOfHugeLine(t *testing.T) {
	f := newLineFramer(0, func([]byte, bool) {}, func() {})
	huge := bytes.Repeat([]byte("x"), 3*retainBytes)
	f.Write(huge[:retainBytes])
	f.Write(huge[retainBytes:])
	f.Write([]byte("\n"))
	if cap(f.buf) > retainBytes {
		t.Errorf("buffer of %d bytes kept after the line ended", cap(f.buf))
	}
}

func TestStripEscapes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[?25h", ""},
		{"\x1b[?25l{\"a\":1}", `{"a":1}`},
		{"{\"a\":1}\x1b[?25h", `{"a":1}`},
		{"\x1b[1;31mred\x1b[0m", "red"},
		{"\x1b]0;title\x07{}", "{}"},
		{"\x1b]8;;http://x\x1b\\link", "link"},
		{"\x1b(B{}", "{}"},
		{"\x1b7{}\x1b8", "{}"},
		{"\x1b{}", "{}"},
		{"{}\x1b", "{}"},
		{"{}\x1b[", "{}"},
		{"\x1b]unterminated {}", ""},
	}
	for _, tc := range cases {
		if got := string(stripEscapes([]byte(tc.in))); got != tc.want {
			t.Errorf("stripEscapes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// referenceFrames frames data the slow, obvious way: split at newlines,
// skip lines over max, clean the rest.
func referenceFrames(data []byte, max int) ([]frame, int) {
	var frames []frame
	tooLong := 0
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		last := i == len(lines)-1
		if last && len(line) == 0 {
			break
		}
		if len(line) > max {
			tooLong++
			continue
		}
		clean := stripEscapes(bytes.TrimSuffix(bytes.Clone(line), []byte("\r")))
		frames = append(frames, frame{string(clean), !last})
	}
	return frames, tooLong
}

// FuzzLineFramer checks that any chunking of any stream gives the same
// lines as framing the whole stream at once.
func FuzzLineFramer(f *testing.F) {
	f.Add([]byte("a\nb\r\n\x1b[?25h{}\n"), uint64(1), uint16(64))
	f.Add([]byte("toolong\nok\nagain-too-long"), uint64(7), uint16(4))
	f.Add([]byte(strings.Repeat("{\"type\":\"user\"}\r\n", 20)), uint64(3), uint16(16))
	f.Add([]byte("\x1b]0;t\x07x\x1b[1;2\n\x1b"), uint64(9), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, max uint16) {
		limit := int(max)
		if limit == 0 {
			limit = DefaultMaxLineBytes
		}
		want, wantLong := referenceFrames(data, limit)

		rng := rand.New(rand.NewPCG(seed, seed>>1))
		var chunks [][]byte
		for rest := data; len(rest) > 0; {
			n := min(1+rng.IntN(32), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		got, gotLong := frameAll(limit, chunks...)
		if !slices.Equal(got, want) || gotLong != wantLong {
			t.Fatalf("chunked: %+v, %d too long\nwhole:   %+v, %d too long", got, gotLong, want, wantLong)
		}
	})
}
