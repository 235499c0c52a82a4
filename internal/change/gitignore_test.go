package change

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitignoreFixture is a tree to build and the verdicts expected in it.
type gitignoreFixture struct {
	files    map[string]string // workspace path -> content; a trailing "/" makes a directory
	verdicts [][2]string       // path, "skip" or "keep"
}

func readGitignoreFixture(t *testing.T, file string) gitignoreFixture {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	fx := gitignoreFixture{files: make(map[string]string)}
	var current string
	inVerdicts := false
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		line := lines.Text()
		if name, ok := strings.CutPrefix(line, "-- "); ok && strings.HasSuffix(name, " --") {
			current = strings.TrimSuffix(name, " --")
			inVerdicts = current == "verdicts"
			if !inVerdicts {
				fx.files[current] = ""
			}
			continue
		}
		switch {
		case inVerdicts:
			fields := strings.Fields(line)
			if len(fields) != 2 || (fields[1] != "skip" && fields[1] != "keep") {
				t.Fatalf("bad verdict line %q", line)
			}
			fx.verdicts = append(fx.verdicts, [2]string{fields[0], fields[1]})
		case current != "":
			fx.files[current] += line + "\n"
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx gitignoreFixture) build(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range fx.files {
		abs := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(name, "/")))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(abs, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func gitignoreFilter(t *testing.T, root string) *Filter {
	t.Helper()
	ws, err := NewWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter(".supervisor", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadGitignore(ws)
	return f
}

func TestGitignoreVerdicts(t *testing.T) {
	fx := readGitignoreFixture(t, filepath.Join("testdata", "gitignore.txt"))
	root := fx.build(t)
	f := gitignoreFilter(t, root)
	for _, v := range fx.verdicts {
		want := ""
		if v[1] == "skip" {
			want = SkipGitignored
		}
		if got := f.Skip(v[0]); got != want {
			t.Errorf("Skip(%q) = %q, want %q", v[0], got, want)
		}
	}
}

// TestGitignoreVerdictsAgreeWithGit checks the fixture's verdicts against
// git itself, so that the fixture states git's behaviour and not ours.
func TestGitignoreVerdictsAgreeWithGit(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	fx := readGitignoreFixture(t, filepath.Join("testdata", "gitignore.txt"))
	root := fx.build(t)
	git := func(args ...string) error {
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		return cmd.Run()
	}
	if err := git("init", "-q"); err != nil {
		t.Fatal(err)
	}
	for _, v := range fx.verdicts {
		err := git("check-ignore", "-q", "--no-index", v[0])
		var exit *exec.ExitError
		switch {
		case err == nil && v[1] != "skip":
			t.Errorf("git ignores %s; the fixture says keep", v[0])
		case errors.As(err, &exit) && exit.ExitCode() == 1 && v[1] != "keep":
			t.Errorf("git keeps %s; the fixture says skip", v[0])
		case err != nil && !errors.As(err, &exit):
			t.Fatal(err)
		}
	}
}

func TestGitignoreComesAfterTheOtherRules(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".gitignore"), []byte("*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, err := NewWorkspace(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter(".supervisor", []string{"*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	f.ReadGitignore(ws)
	for rel, want := range map[string]string{
		".git/HEAD":      SkipGit,
		".supervisor/db": SkipStateDir,
		"a.tmp":          SkipIgnored,
		"a.go":           SkipGitignored,
		"":               "",
	} {
		if got := f.Skip(rel); got != want {
			t.Errorf("Skip(%q) = %q, want %q", rel, got, want)
		}
	}
}

func TestGitignoreIsReadAgainOnlyAfterObserve(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		abs := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sub/.gitignore", "*.out\n")
	f := gitignoreFilter(t, root)
	check := func(step, rel, want string) {
		t.Helper()
		if got := f.Skip(rel); got != want {
			t.Errorf("%s: Skip(%q) = %q, want %q", step, rel, got, want)
		}
	}
	check("first read", "sub/a.out", SkipGitignored)

	write("sub/.gitignore", "*.bin\n")
	check("before observe", "sub/a.out", SkipGitignored)
	f.Observe("sub/.gitignore")
	check("after observing the file", "sub/a.out", "")
	check("after observing the file", "sub/a.bin", SkipGitignored)

	// A directory replaced wholesale takes its cached rules with it.
	if err := os.RemoveAll(filepath.Join(root, "sub")); err != nil {
		t.Fatal(err)
	}
	write("sub/a.bin", "")
	f.Observe("sub")
	check("after observing the directory", "sub/a.bin", "")
}

func TestGitignoreLinkIsNotFollowed(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(outside, []byte("*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, ".gitignore")); err != nil {
		t.Fatal(err)
	}
	if got := gitignoreFilter(t, root).Skip("a.go"); got != "" {
		t.Errorf("Skip(a.go) = %q through a linked .gitignore, want kept", got)
	}
}

func TestParseGitRuleDropsWhatIsNotARule(t *testing.T) {
	for _, line := range []string{"", "   ", "# comment", "!", "/", "[", "a/[b"} {
		if r, ok := parseGitRule(line); ok {
			t.Errorf("parseGitRule(%q) = %+v, want no rule", line, r)
		}
	}
}
