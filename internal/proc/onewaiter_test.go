package proc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyTheReaperWaitsOnProcesses reads the code of every package of
// this module that the supervisor binary links (tests aside) and fails on
// anything that could wait on a process behind the reaper's back: os/exec
// (Cmd.Wait, Run, Output), the os.StartProcess / os.FindProcess route to
// Process.Wait, and a wait4 call anywhere but the reaper. One of them
// would steal a status the reaper owes to whoever started the process, or
// lose its own to the reaper.
func TestOnlyTheReaperWaitsOnProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	// Through the reaper: in this test process it waits on every pid, and
	// os/exec's Wait would lose the status to it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, done, err := testReaper.Start(Command{
		Argv: []string{"go", "list", "-e", "-deps",
			"-f", "{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{end}}",
			"github.com/agent-supervisor/supervisor/cmd/supervisor"},
		Stdout: w,
	})
	_ = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	if st := <-done; st.ExitCode() != 0 {
		t.Fatalf("go list: %v", st)
	}

	checked := map[string]bool{}
	var offences []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		importPath, dir, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(importPath, "github.com/agent-supervisor/supervisor/") {
			continue
		}
		offences = append(offences, waitOffences(t, importPath, dir)...)
		checked[strings.TrimPrefix(importPath, "github.com/agent-supervisor/supervisor/")] = true
	}
	for _, pkg := range []string{"cmd/supervisor", "internal/proc", "internal/sync"} {
		if !checked[pkg] {
			t.Errorf("%s was not checked; go list printed:\n%s", pkg, out)
		}
	}
	for _, o := range offences {
		t.Errorf("%s: start and wait for processes through Reaper.Start only", o)
	}
}

func waitOffences(t *testing.T, importPath, dir string) []string {
	t.Helper()
	forbidden := map[string]bool{"Wait4": true, "StartProcess": true, "FindProcess": true}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var offences []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		name := importPath + "/" + filepath.Base(path)
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "os/exec" {
				offences = append(offences, name+" imports os/exec")
			}
		}
		if name == "github.com/agent-supervisor/supervisor/internal/proc/reaper.go" {
			continue
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || !forbidden[sel.Sel.Name] {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok &&
				(pkg.Name == "unix" || pkg.Name == "syscall" || pkg.Name == "os") {
				offences = append(offences, name+" calls "+pkg.Name+"."+sel.Sel.Name)
			}
			return true
		})
	}
	return offences
}
