package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// recorder is a change.Sink that keeps the hints it receives as short
// strings: "path <rel>" or "settle".
type recorder struct {
	mu    sync.Mutex
	hints []string
}

func (r *recorder) Notify(h change.Hint) {
	if h.Source != change.SourceAgent {
		panic("agent hint with source " + h.Source.String())
	}
	s := h.Kind.String()
	if h.Kind == change.KindPath {
		s += " " + h.Path
	}
	r.mu.Lock()
	r.hints = append(r.hints, s)
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hints)
}

var resultTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return resultTime }

// newTestDecoder returns a decoder for the workspace at root, the sink it
// reports to and its metrics. edit adjusts the config before use.
func newTestDecoder(t testing.TB, root string, edit func(*Config)) (*Decoder, *recorder, *metrics.Metrics) {
	t.Helper()
	ws, err := change.NewWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg := Config{Workspace: ws, Sink: rec, Metrics: metrics.New(), Now: fixedNow}
	if edit != nil {
		edit(&cfg)
	}
	d, err := NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, rec, cfg.Metrics
}

// transcript is a recorded or synthetic stream-json session with the hints
// it must produce.
type transcript struct {
	name  string
	data  []byte
	hints []string
}

// loadTranscripts reads every NAME.jsonl in dir with its NAME.hints file.
// The workspace of a transcript is the cwd of its first init line; every
// mention of that directory is rewritten to root, so a session recorded
// anywhere replays against a directory that exists.
func loadTranscripts(t testing.TB, dir, root string) []transcript {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []transcript
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if cwd := initCWD(data); cwd != "" {
			data = bytes.ReplaceAll(data, []byte(cwd), []byte(root))
		}
		base := strings.TrimSuffix(file, ".jsonl")
		out = append(out, transcript{
			name:  filepath.Base(base),
			data:  data,
			hints: readHints(t, base+".hints"),
		})
	}
	return out
}

// initCWD returns the cwd of the first init line in a transcript.
func initCWD(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 256<<20)
	for sc.Scan() {
		var ev event
		line := bytes.TrimSpace(stripEscapes(slices.Clone(sc.Bytes())))
		if json.Unmarshal(line, &ev) == nil &&
			ev.Type == "system" && ev.Subtype == "init" {
			return ev.CWD
		}
	}
	return ""
}

// readHints reads a hints file: one hint a line, "#" starts a comment.
func readHints(t testing.TB, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("every transcript needs its expected hints: %v", err)
	}
	var hints []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			hints = append(hints, line)
		}
	}
	return hints
}

// feed writes data to d in chunks of the given sizes (cycled), then closes.
func feed(t testing.TB, d *Decoder, data []byte, sizes ...int) {
	t.Helper()
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(sizes) > 0 {
			n = min(sizes[i%len(sizes)], len(data))
		}
		if w, err := d.Write(data[:n]); w != n || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", w, err, n)
		}
		data = data[n:]
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDecoderTranscriptsGiveTheirHints(t *testing.T) {
	root := t.TempDir()
	for _, tr := range loadTranscripts(t, "testdata", root) {
		t.Run(tr.name, func(t *testing.T) {
			d, rec, _ := newTestDecoder(t, root, nil)
			feed(t, d, tr.data)
			if got := rec.got(); !slices.Equal(got, tr.hints) {
				t.Errorf("hints:\n got %q\nwant %q", got, tr.hints)
			}
		})
	}
}

// Chunk boundaries fall anywhere in the pty reader's output: inside a
// line, inside a UTF-8 sequence, between CR and LF, inside an escape.
func TestDecoderHintsDoNotDependOnChunkBoundaries(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	all := append(loadTranscripts(t, "testdata", root),
		loadTranscripts(t, filepath.Join("testdata", "real"), root)...)
	for _, tr := range all {
		t.Run(tr.name, func(t *testing.T) {
			whole, wholeRec, _ := newTestDecoder(t, root, nil)
			feed(t, whole, tr.data)

			random := make([]int, 64)
			for i := range random {
				random[i] = 1 + rng.IntN(700)
			}
			for name, sizes := range map[string][]int{
				"byte by byte":  {1},
				"random chunks": random,
				"4 KiB reads":   {4096},
			} {
				d, rec, _ := newTestDecoder(t, root, nil)
				feed(t, d, tr.data, sizes...)
				if got := rec.got(); !slices.Equal(got, wholeRec.got()) {
					t.Errorf("%s: hints %q, fed whole %q", name, got, wholeRec.got())
				}
				if got, want := d.Session(), whole.Session(); got != want {
					t.Errorf("%s: session %+v, fed whole %+v", name, got, want)
				}
			}
		})
	}
}

// Transcripts recorded from the real CLI land in testdata/real, each with
// its .hints file; this test replays whatever is there.
func TestDecoderRealTranscriptsGiveTheirHints(t *testing.T) {
	root := t.TempDir()
	transcripts := loadTranscripts(t, filepath.Join("testdata", "real"), root)
	if len(transcripts) == 0 {
		t.Skip("no recorded transcripts in testdata/real yet")
	}
	for _, tr := range transcripts {
		t.Run(tr.name, func(t *testing.T) {
			d, rec, m := newTestDecoder(t, root, nil)
			feed(t, d, tr.data, 4096)
			if got := rec.got(); !slices.Equal(got, tr.hints) {
				t.Errorf("hints:\n got %q\nwant %q", got, tr.hints)
			}
			if s := d.Session(); s.ID == "" || !s.ResultSeen {
				t.Errorf("session %+v: want an id from the init line and a result", s)
			}
			if n := counterValue(m.AgentParseErrors, ReasonBadField); n != 0 {
				t.Errorf("real output counted %v bad_field errors", n)
			}
		})
	}
}

func TestDecoderNoisyTranscriptCountsWhatItSkips(t *testing.T) {
	root := t.TempDir()
	var noisy transcript
	for _, tr := range loadTranscripts(t, "testdata", root) {
		if tr.name == "session_noisy" {
			noisy = tr
		}
	}
	if noisy.data == nil {
		t.Fatal("testdata/session_noisy.jsonl is missing")
	}
	d, _, m := newTestDecoder(t, root, nil)
	feed(t, d, noisy.data)

	want := map[string]float64{
		// The npm warning and the user line cut off mid-stream.
		"parse_errors/not_json": 2, "parse_errors/truncated": 0, "parse_errors/bad_field": 0,
		"events/system": 2, "events/stream_event": 1, "events/rate_limit_event": 1,
		"events/assistant": 1, "events/user": 1, "events/result": 1, "events/other": 1,
	}
	vecs := counts(m)
	for key, w := range want {
		metric, label, _ := strings.Cut(key, "/")
		if got := counterValue(vecs[metric], label); got != w {
			t.Errorf("%s = %v, want %v", key, got, w)
		}
	}
	if s := d.Session(); s.ID == "" || !s.ResultSeen || s.NumTurns != 2 {
		t.Errorf("session %+v: want the init line's id and the result's 2 turns", s)
	}
}

// The recorded e2e session writes one file outside the workspace and has
// one Edit fail; both are counted and neither gives a hint.
func TestDecoderRealE2ECountsOutsideWriteAndFailedEdit(t *testing.T) {
	root := t.TempDir()
	var e2e transcript
	for _, tr := range loadTranscripts(t, filepath.Join("testdata", "real"), root) {
		if tr.name == "e2e" {
			e2e = tr
		}
	}
	if e2e.data == nil {
		t.Skip("testdata/real/e2e.jsonl not recorded")
	}
	d, _, m := newTestDecoder(t, root, nil)
	feed(t, d, e2e.data)
	for key, want := range map[string]float64{
		"drops/outside": 1, "tool_errors/Edit": 1, "tool_uses/Write": 6,
		"tool_uses/Edit": 2, "tool_uses/Bash": 2, "parse_errors/not_json": 0,
	} {
		metric, label, _ := strings.Cut(key, "/")
		if got := counterValue(counts(m)[metric], label); got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if s := d.Session(); s.NumTurns != 11 || s.IsError || s.ToolUses != 10 {
		t.Errorf("session %+v: want 11 turns, success, 10 tool uses", s)
	}
}
