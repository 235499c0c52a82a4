package agent

import (
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// hintChecker is a sink that fails the test on any hint a decoder must
// never send: a path outside the workspace or not in the queue's key form.
type hintChecker struct {
	t    *testing.T
	root string
}

func (c hintChecker) Notify(h change.Hint) {
	if h.Source != change.SourceAgent {
		c.t.Fatalf("hint %+v: source is not agent", h)
	}
	switch h.Kind {
	case change.KindSettle:
		if h.Path != "" {
			c.t.Fatalf("settle hint with path %q", h.Path)
		}
	case change.KindPath:
		p := h.Path
		if p == "" || path.Clean(p) != p || path.IsAbs(p) || p == ".." ||
			strings.HasPrefix(p, "../") || strings.ContainsRune(p, 0) {
			c.t.Fatalf("path hint %q is not a clean workspace-relative path", p)
		}
		abs := filepath.Join(c.root, filepath.FromSlash(p))
		if !strings.HasPrefix(abs, c.root+string(filepath.Separator)) {
			c.t.Fatalf("path hint %q lies outside %s", p, c.root)
		}
	default:
		c.t.Fatalf("unexpected hint kind %v", h.Kind)
	}
}

// FuzzDecoder feeds arbitrary output in arbitrary chunks: the decoder must
// not panic, and every hint it sends must name a path inside the workspace.
func FuzzDecoder(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	real, _ := filepath.Glob(filepath.Join("testdata", "real", "*.jsonl"))
	files = append(files, real...)
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint64(len(data)))
	}
	for _, seed := range []string{
		initLine("/ws/sub") + "\n" + useLine("a", "Write", write("../../etc/x")) + "\n" +
			resultLine("a", false) + "\n",
		useLine("b", "NotebookEdit", map[string]any{"notebook_path": "/ws/n.ipynb"}) + "\n" +
			resultLine("b", false),
		`{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":5}]}}` + "\n",
		`{"type":"result","num_turns":-1,"usage":{"input_tokens":"x"}}` + "\n",
		"\x1b[?25l" + useLine("c", "Bash", nil) + "\r\n" + resultLine("c", true) + "\x1b[?25h",
	} {
		f.Add([]byte(seed), uint64(len(seed)))
	}

	root := f.TempDir()
	ws, err := change.NewWorkspace(root)
	if err != nil {
		f.Fatal(err)
	}
	m := metrics.New()
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		// The transcripts' workspaces and the seeds' "/ws" all become the
		// fuzz workspace, so mutations work on paths that can be inside it.
		text := strings.NewReplacer("/home/user/project", root, "/workspace", root, "/ws", root).
			Replace(string(data))

		d, err := NewDecoder(Config{Workspace: ws, Sink: hintChecker{t, root},
			Metrics: m, MaxLineBytes: 1 << 16, MaxPendingTools: 8})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		for rest := []byte(text); len(rest) > 0; {
			n := min(1+rng.IntN(256), len(rest))
			if w, err := d.Write(rest[:n]); w != n || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", w, err, n)
			}
			rest = rest[n:]
		}
		d.Close()
		d.Session()
	})
}
