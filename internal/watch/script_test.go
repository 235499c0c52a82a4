package watch

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// TestScripts runs every testdata/scripts/*.txt against a real fsnotify
// watcher. A script is a list of file operations, then the hints expected:
//
//	# what the script shows
//	-- setup --          operations done before the watcher starts
//	mkdir a/b
//	-- run --            operations done once the watcher is ready
//	mv a c
//	sync                 wait until the watcher has handled all of the above
//	write c/b/f
//	-- expect --         hints that must arrive, in any order
//	path c/b/f
//	watched c/b          the directory has a watch at the end
//	unwatched a          it has none
//	-- absent --         hints that must never arrive
//	path a/b/f           this exact path hint
//	under .git           any path hint at or beneath .git
//
// Operations: mkdir P (with parents), write P (create or overwrite), rm P
// (recursive), mv A B, symlink TARGET LINK, chmod P, and sh COMMAND (run by
// /bin/sh in the workspace, with $OUT set). Paths are relative to the workspace; $OUT/...
// names a directory outside it. Extra hints are allowed: the queue looks at
// the disk and drops what did not change.
//
// After every script, the watched directories must be exactly the
// directories on disk that the filter allows (state dir .supervisor,
// ignores node_modules and *.tmp), with no symbolic link followed.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scripts", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/scripts")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			s, err := parseScript(file)
			if err != nil {
				t.Fatal(err)
			}
			runScript(t, s)
		})
	}
}

type script struct {
	setup, run, expect, absent [][]string
}

func parseScript(file string) (*script, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	s := &script{}
	sections := map[string]*[][]string{
		"setup": &s.setup, "run": &s.run, "expect": &s.expect, "absent": &s.absent,
	}
	var current *[][]string
	lines := bufio.NewScanner(f)
	for n := 1; lines.Scan(); n++ {
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, ok := strings.CutPrefix(line, "-- "); ok {
			section, known := sections[strings.TrimSuffix(name, " --")]
			if !known {
				return nil, fmt.Errorf("%s:%d: unknown section %q", file, n, line)
			}
			current = section
			continue
		}
		if current == nil {
			return nil, fmt.Errorf("%s:%d: line outside a section", file, n)
		}
		fields := strings.Fields(line)
		if fields[0] == "sh" {
			fields = []string{"sh", strings.TrimSpace(strings.TrimPrefix(line, "sh"))}
		}
		*current = append(*current, fields)
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(s.expect) == 0 {
		return nil, fmt.Errorf("%s: no expectations", file)
	}
	return s, nil
}

func runScript(t *testing.T, s *script) {
	h := newHarness(t, nil)
	for _, op := range s.setup {
		h.do(op)
	}
	h.start()
	for _, op := range s.run {
		h.do(op)
	}
	h.barrier()

	for _, e := range s.expect {
		switch {
		case e[0] == "path" && len(e) == 2:
			h.waitHint(pathHint(e[1]))
		case e[0] == "watched" && len(e) == 2:
			if !h.watched(e[1]) {
				t.Errorf("%s has no watch", e[1])
			}
		case e[0] == "unwatched" && len(e) == 2:
			if h.watched(e[1]) {
				t.Errorf("%s has a watch", e[1])
			}
		default:
			t.Fatalf("bad expectation %q", e)
		}
	}
	for _, a := range s.absent {
		if len(a) != 2 || (a[0] != "path" && a[0] != "under") {
			t.Fatalf("bad absence %q", a)
		}
		for _, got := range h.rec.all() {
			if got.Kind != change.KindPath {
				continue
			}
			if got.Path == a[1] || (a[0] == "under" && change.IsBeneath(got.Path, a[1])) {
				t.Errorf("unexpected hint %+v (absent %q)", got, a)
			}
		}
	}
	h.checkWatchesFollowTree()
}

// do performs one script operation.
func (h *harness) do(op []string) {
	h.t.Helper()
	var err error
	switch {
	case op[0] == "mkdir" && len(op) == 2:
		err = os.MkdirAll(h.abs(op[1]), 0o755)
	case op[0] == "write" && len(op) == 2:
		err = os.WriteFile(h.abs(op[1]), []byte("x\n"), 0o644)
	case op[0] == "rm" && len(op) == 2:
		err = os.RemoveAll(h.abs(op[1]))
	case op[0] == "mv" && len(op) == 3:
		err = os.Rename(h.abs(op[1]), h.abs(op[2]))
	case op[0] == "symlink" && len(op) == 3:
		err = os.Symlink(h.abs(op[1]), h.abs(op[2]))
	case op[0] == "chmod" && len(op) == 2:
		err = os.Chmod(h.abs(op[1]), 0o600)
	case op[0] == "sh" && len(op) == 2:
		cmd := exec.Command("/bin/sh", "-c", op[1])
		cmd.Dir = h.root
		cmd.Env = append(os.Environ(), "OUT="+h.out)
		if out, cmdErr := cmd.CombinedOutput(); cmdErr != nil {
			err = fmt.Errorf("%w: %s", cmdErr, out)
		}
	case op[0] == "sync" && len(op) == 1:
		h.barrier()
	default:
		h.t.Fatalf("bad operation %q", op)
	}
	if err != nil {
		h.t.Fatalf("%q: %v", op, err)
	}
}
