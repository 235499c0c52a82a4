package change

import (
	"path"
	"strings"
	"testing"
)

func TestFilterSkip(t *testing.T) {
	f, err := NewFilter(".supervisor", []string{
		"node_modules", "*.log", "build/out", "docs/**/draft*", "/dist", "tmp/",
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ rel, want string }{
		{"", ""},
		{"main.go", ""},
		{".git", SkipGit},
		{".git/config", SkipGit},
		{"vendor/lib/.git/HEAD", SkipGit},
		{".github/workflows/ci.yml", ""},
		{".gitignore", ""},
		{".supervisor", SkipStateDir},
		{".supervisor/manifest.db", SkipStateDir},
		{".supervisor-old/x", ""},
		{"node_modules", SkipIgnored},
		{"web/node_modules/react/index.js", SkipIgnored},
		{"node_modules_backup/a", ""},
		{"app.log", SkipIgnored},
		{"logs/today.log", SkipIgnored},
		{"logs/today.log.gz", ""},
		{"build/out", SkipIgnored},
		{"build/out/bin/app", SkipIgnored},
		{"src/build/out", ""},
		{"docs/draft.md", SkipIgnored},
		{"docs/a/b/draft-2.md", SkipIgnored},
		{"docs/final.md", ""},
		{"site/docs/draft.md", ""},
		{"dist/app.js", SkipIgnored},
		{"web/dist/app.js", ""},
		{"tmp/x", SkipIgnored},
		{"a/tmp", SkipIgnored},
	}
	for _, tc := range cases {
		if got := f.Skip(tc.rel); got != tc.want {
			t.Errorf("Skip(%q) = %q, want %q", tc.rel, got, tc.want)
		}
	}
}

func TestFilterRulesApplyInOrder(t *testing.T) {
	// The state directory may itself match an ignore pattern; the state
	// reason wins, and a .git element wins over both.
	f, err := NewFilter("state", []string{"state", ".git"})
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"state/x":      SkipStateDir,
		"state/.git/x": SkipGit,
		"a/state":      SkipIgnored,
	} {
		if got := f.Skip(rel); got != want {
			t.Errorf("Skip(%q) = %q, want %q", rel, got, want)
		}
	}
}

func TestFilterWithoutStateDirSkipsOnlyGitAndPatterns(t *testing.T) {
	f, err := NewFilter("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{".supervisor/x": "", "a/.git": SkipGit, "a": ""} {
		if got := f.Skip(rel); got != want {
			t.Errorf("Skip(%q) = %q, want %q", rel, got, want)
		}
	}
}

func TestNewFilterRejectsMalformedPatterns(t *testing.T) {
	for _, p := range []string{"", "/", "//", "[", "a/[b", "\\"} {
		_, err := NewFilter("", []string{"ok", p})
		if err == nil {
			t.Errorf("NewFilter accepted pattern %q", p)
			continue
		}
		if p != "" && !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name the pattern %q", err, p)
		}
	}
}

// FuzzFilterSkip checks Skip's invariants for any path and pattern: the
// root is never skipped, anything with a .git element is, the reason is
// one of the fixed labels, and whatever lies beneath a skipped path is
// skipped too.
func FuzzFilterSkip(f *testing.F) {
	for _, seed := range [][2]string{
		{"a/b.log", "*.log"}, {"web/node_modules/x", "node_modules"},
		{"docs/a/draft", "docs/**/draft*"}, {"dist/x", "/dist"}, {".git/x", "[a-"},
		{".supervisor/m", "**"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, rel, pattern string) {
		// Skip takes clean relative keys; make one from the input.
		rel = strings.TrimLeft(path.Clean("/"+rel), "/")
		if len(pattern) > 64 || strings.Count(pattern, "**") > 4 {
			t.Skip("pattern cost grows with its ** elements; operators write short ones")
		}
		filter, err := NewFilter(".supervisor", []string{pattern})
		if err != nil {
			filter, _ = NewFilter(".supervisor", nil)
		}

		reason := filter.Skip(rel)
		switch reason {
		case "", SkipGit, SkipStateDir, SkipIgnored:
		default:
			t.Fatalf("Skip(%q) = unknown reason %q", rel, reason)
		}
		if rel == "" && reason != "" {
			t.Fatalf("the root is skipped for %q", reason)
		}
		if (rel == ".git" || strings.HasPrefix(rel, ".git/") || strings.Contains(rel, "/.git/") ||
			strings.HasSuffix(rel, "/.git")) && reason != SkipGit {
			t.Fatalf("Skip(%q) = %q, want git", rel, reason)
		}
		if reason != "" && rel != "" {
			if child := filter.Skip(rel + "/child"); child == "" {
				t.Fatalf("Skip(%q) = %q but its child is synced", rel, reason)
			}
		}
	})
}
