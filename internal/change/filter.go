package change

import (
	"fmt"
	"path"
	"strings"
)

// Skip reasons are metric labels; the set is fixed.
const (
	SkipGit      = "git"       // inside a .git directory
	SkipStateDir = "state_dir" // the supervisor's own state
	SkipIgnored  = "ignored"   // an --ignore pattern matched
)

// Filter decides which workspace paths are never synced. The rules apply in
// this order, and the first that matches wins:
//
//  1. any path with a ".git" element (the repository's own database);
//  2. the state directory and everything beneath it;
//  3. the --ignore patterns, in the order given;
//  4. with ReadGitignore (--gitignore), the workspace's .gitignore files.
//
// A path is ignored when it or any directory above it matches, so ignoring
// "node_modules" ignores everything inside it too. Patterns use path.Match
// syntax on slash-separated relative paths, plus "**" as a whole element for
// any number of directories (including none). A pattern without a slash,
// or with only a trailing one, matches an entry's name at any depth, as in
// .gitignore; a pattern with any other slash, a leading one included, is
// anchored at the workspace root.
type Filter struct {
	stateDir  string // workspace-relative; "" when the state lives outside
	patterns  []pattern
	gitignore *gitignore // nil unless ReadGitignore was called
}

type pattern struct {
	text     string
	elements []string // split at "/"; nil for a name-only pattern
}

// NewFilter returns a Filter. stateDir is the workspace-relative state
// directory, or "" when it lies outside the workspace. A malformed pattern is
// an error that names it.
func NewFilter(stateDir string, patterns []string) (*Filter, error) {
	f := &Filter{stateDir: stateDir}
	for _, text := range patterns {
		p, err := compile(text)
		if err != nil {
			return nil, err
		}
		f.patterns = append(f.patterns, p)
	}
	return f, nil
}

func compile(text string) (pattern, error) {
	clean := strings.Trim(text, "/")
	if clean == "" {
		return pattern{}, fmt.Errorf("ignore pattern %q matches nothing", text)
	}
	p := pattern{text: text}
	// A slash anywhere but at the end anchors the pattern, as in .gitignore:
	// "/dist" names the top-level dist only, while "tmp/" still names any.
	if strings.Contains(strings.TrimRight(text, "/"), "/") {
		p.elements = strings.Split(clean, "/")
	}
	check := []string{clean}
	if p.elements != nil {
		check = p.elements
	}
	for _, el := range check {
		if _, err := path.Match(el, ""); err != nil {
			return pattern{}, fmt.Errorf("ignore pattern %q: %w", text, err)
		}
	}
	return p, nil
}

// Skip returns the reason rel is never synced, or "" when it may be. rel is
// a clean workspace-relative slash path; the root ("") is never skipped.
func (f *Filter) Skip(rel string) string {
	if rel == "" {
		return ""
	}
	elements := strings.Split(rel, "/")
	for _, el := range elements {
		if el == ".git" {
			return SkipGit
		}
	}
	if f.stateDir != "" && IsBeneath(rel, f.stateDir) {
		return SkipStateDir
	}
	for _, p := range f.patterns {
		if p.matches(elements) {
			return SkipIgnored
		}
	}
	if f.gitignore != nil && f.gitignore.excluded(elements) {
		return SkipGitignored
	}
	return ""
}

// ReadGitignore makes the filter honour the .gitignore files of ws as its
// last rule. Call it before the filter is shared. The files are read when
// first needed; a changed one applies once Observe has been told.
func (f *Filter) ReadGitignore(ws *Workspace) {
	f.gitignore = newGitignore(ws)
}

// Observe tells the filter that rel changed on disk, so that rules read
// from a .gitignore file at or beneath rel are read again. The watcher
// calls it for every event; it costs one map lookup for an ordinary file.
// A .gitignore that changes applies to later changes: a file it newly
// excludes stays in the backend, one it newly includes is synced by its
// next change or the next scan.
func (f *Filter) Observe(rel string) {
	if f.gitignore != nil {
		f.gitignore.observe(rel)
	}
}

// matches reports whether the path, or any directory above it, matches.
func (p pattern) matches(elements []string) bool {
	if p.elements == nil {
		name := strings.Trim(p.text, "/")
		for _, el := range elements {
			if ok, _ := path.Match(name, el); ok {
				return true
			}
		}
		return false
	}
	for n := 1; n <= len(elements); n++ {
		if matchElements(p.elements, elements[:n]) {
			return true
		}
	}
	return false
}

// matchElements matches pattern elements against path elements, with "**"
// standing for zero or more path elements.
func matchElements(pat, elements []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for skip := 0; skip <= len(elements); skip++ {
				if matchElements(pat[1:], elements[skip:]) {
					return true
				}
			}
			return false
		}
		if len(elements) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], elements[0]); !ok {
			return false
		}
		pat, elements = pat[1:], elements[1:]
	}
	return len(elements) == 0
}
