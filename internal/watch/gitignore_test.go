package watch

import (
	"os"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
)

func TestGitignoredPathsGetNoWatchAndNoHintAndFollowEdits(t *testing.T) {
	h := newHarness(t, nil)
	ws, err := change.NewWorkspace(h.root)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := change.NewFilter(testStateDir, testIgnores)
	if err != nil {
		t.Fatal(err)
	}
	filter.ReadGitignore(ws)
	h.w.filter = filter
	if err := os.WriteFile(h.abs(".gitignore"), []byte("out/\n*.o\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.do([]string{"mkdir", "out"})
	h.start()

	h.do([]string{"sh", "mkdir -p out/deep src && echo x > out/deep/a && echo x > src/m.o"})
	h.do([]string{"write", "src/m.c"})
	h.waitHint(pathHint("src/m.c"))
	h.barrier()
	if h.watched("out") || h.watched("out/deep") {
		t.Error("a gitignored directory has a watch")
	}
	for _, p := range []string{"out/deep/a", "src/m.o"} {
		if h.rec.has(pathHint(p)) {
			t.Errorf("gitignored %s was hinted", p)
		}
	}

	// Editing .gitignore takes effect for the changes that follow it.
	if err := os.WriteFile(h.abs(".gitignore"), []byte("out/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.barrier()
	h.do([]string{"write", "src/n.o"})
	h.waitHint(pathHint("src/n.o"))
}
