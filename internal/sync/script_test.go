package sync

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agent-supervisor/supervisor/internal/change"
)

// TestScripts runs the queue against the scripts in testdata/scripts: file
// operations on a workspace, the hints a producer would send, then the
// mirror and the backend operations expected. See testdata/scripts/README.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("testdata/scripts/*.txt")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	for _, script := range scripts {
		t.Run(strings.TrimSuffix(filepath.Base(script), ".txt"), func(t *testing.T) {
			f := newFixture(t)
			f.start()
			runScript(t, f, script)
		})
	}
}

func runScript(t *testing.T, f *fixture, script string) {
	file, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	lines := bufio.NewScanner(file)
	lineNo := 0
	next := func() (string, bool) {
		ok := lines.Scan()
		lineNo++
		return lines.Text(), ok
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		at := script + ":" + strconv.Itoa(lineNo)
		switch cmd, args := fields[0], fields[1:]; cmd {
		case "mirror":
			want := make(map[string]string)
			for {
				l, ok := next()
				if !ok || l == "end" {
					break
				}
				name, content, _ := strings.Cut(l, " ")
				want[name] = content
			}
			if got := tree(t, f.mirror); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: mirror is %v, want %v", at, got, want)
			}
		case "dirs":
			want := args
			if got := dirs(t, f.mirror); !reflect.DeepEqual(got, want) &&
				len(got)+len(want) > 0 {
				t.Fatalf("%s: mirror directories are %v, want %v", at, got, want)
			}
		default:
			if err := step(f, cmd, args, strings.TrimSpace(line)); err != "" {
				t.Fatalf("%s: %s", at, err)
			}
		}
	}
}

// step runs one script command; it returns a failure message or "".
func step(f *fixture, cmd string, args []string, line string) string {
	ws := func(rel string) string { return filepath.Join(f.workspace, filepath.FromSlash(rel)) }
	var err error
	switch cmd {
	case "write":
		_, rest, _ := strings.Cut(line, " ")
		name, content, _ := strings.Cut(rest, " ")
		f.write(name, content)
	case "outside":
		err = os.WriteFile(filepath.Join(f.outside, args[0]), []byte(args[1]), 0o644)
	case "rm":
		err = os.RemoveAll(ws(args[0]))
	case "mv":
		err = os.Rename(ws(args[0]), ws(args[1]))
	case "symlink":
		err = os.Symlink(strings.ReplaceAll(args[0], "$OUTSIDE", f.outside), ws(args[1]))
	case "chmod":
		mode, _ := strconv.ParseUint(args[0], 8, 32)
		err = os.Chmod(ws(args[1]), os.FileMode(mode))
	case "mkfifo":
		err = syscall.Mkfifo(ws(args[0]), 0o644)
	case "hint":
		sources := map[string]change.Source{"agent": change.SourceAgent,
			"fs": change.SourceFS, "scan": change.SourceScan}
		f.hint(sources[args[0]], args[1])
	case "settle":
		f.queue.Notify(change.Hint{Kind: change.KindSettle, Source: change.SourceAgent})
	case "rescan":
		path := ""
		if len(args) > 0 {
			path = args[0]
		}
		f.queue.Notify(change.Hint{Kind: change.KindRescan, Source: change.SourceFS,
			Path: path, Reason: "overflow"})
	case "flush":
		f.flush()
	case "ops":
		for _, a := range args {
			op, n, _ := strings.Cut(a, "=")
			if want, _ := strconv.Atoi(n); f.backend.count(op) != want {
				return op + " count is " + strconv.Itoa(f.backend.count(op)) +
					", want " + n + " (ops " + strings.Join(f.backend.ops, ", ") + ")"
			}
		}
	case "mode":
		info, statErr := os.Stat(filepath.Join(f.mirror, filepath.FromSlash(args[0])))
		if statErr != nil {
			return statErr.Error()
		}
		if got := strconv.FormatUint(uint64(info.Mode().Perm()), 8); got != args[1] {
			return "mirror mode of " + args[0] + " is " + got + ", want " + args[1]
		}
	case "skipped":
		if got := f.skipped(args[0]); strconv.FormatFloat(got, 'f', -1, 64) != args[1] {
			return "skipped " + args[0] + " is " + strconv.FormatFloat(got, 'f', -1, 64) +
				", want " + args[1]
		}
	default:
		return "unknown command " + cmd
	}
	if err != nil {
		return err.Error()
	}
	return ""
}
