package agent

import (
	"strings"
	"testing"
)

// BenchmarkDecoderWriteOfFourMegabytes measures the pty reader's cost of a
// Write tool call for a 2 MB file: its content is on the tool_use line, and
// the result line follows. Chunks are 32 KiB, as a pty read returns.
func BenchmarkDecoderWriteOfFourMegabytes(b *testing.B) {
	root := b.TempDir()
	d, _, _ := newTestDecoder(b, root, nil)
	content := strings.Repeat("0123456789abcdef", 4<<20/16)
	data := []byte(useLine("t1", "Write", map[string]any{"file_path": "big", "content": content}) +
		"\n" + resultLine("t1", false) + "\n")
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		for rest := data; len(rest) > 0; {
			n := min(32<<10, len(rest))
			d.Write(rest[:n])
			rest = rest[n:]
		}
	}
}

// BenchmarkDecoderTranscript measures a typical session of short lines.
func BenchmarkDecoderTranscript(b *testing.B) {
	root := b.TempDir()
	trs := loadTranscripts(b, "testdata", root)
	d, _, _ := newTestDecoder(b, root, nil)
	var data []byte
	for _, tr := range trs {
		data = append(data, tr.data...)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		d.Write(data)
	}
}
