package change

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
)

// SkipGitignored is the skip reason for a path a .gitignore file excludes
// (only with --gitignore).
const SkipGitignored = "gitignored"

// gitignoreName is the file whose rules apply to its directory's subtree.
const gitignoreName = ".gitignore"

// maxGitignoreSize bounds what is read of one .gitignore: a generated file
// of megabytes would cost memory and a match per line for every path.
const maxGitignoreSize = 1 << 20

// gitignore holds the rules of the workspace's .gitignore files, read when
// a path beneath their directory is first asked about and cached per
// directory until Observe says the file or its directory changed.
//
// It follows gitignore(5) for what a workspace needs: comments and blank
// lines, "!" to re-include, a trailing "/" for directories only, a slash
// elsewhere to anchor the pattern at the file's directory, "**" for any
// number of directories, deeper files and later lines winning, and no way
// to re-include a path beneath an excluded directory. It does not read
// .git/info/exclude or core.excludesFile: those belong to one clone, not to
// the project being synced.
type gitignore struct {
	ws *Workspace

	mu    sync.Mutex
	rules map[string][]gitRule // directory -> rules of its .gitignore; nil when it has none
}

// gitRule is one line of a .gitignore file.
type gitRule struct {
	negate   bool
	dirOnly  bool
	anchored bool
	elements []string // anchored: the pattern split at "/"; otherwise one name glob
}

func newGitignore(ws *Workspace) *gitignore {
	return &gitignore{ws: ws, rules: make(map[string][]gitRule)}
}

// excluded reports whether the .gitignore files exclude rel. Each directory
// above rel is checked first, from the root down, since a path beneath an
// excluded directory stays excluded whatever a later rule says.
func (g *gitignore) excluded(elements []string) bool {
	for n := 1; n <= len(elements); n++ {
		if g.excludes(elements, n) {
			return true
		}
	}
	return false
}

// excludes decides for the path made of the first n elements, by the rules
// of every .gitignore in the directories above it; the last match wins.
func (g *gitignore) excludes(elements []string, n int) bool {
	isDir := n < len(elements) // an ancestor of the path asked about is a directory
	decided, ignored := false, false
	for k := range n {
		rules := g.rulesOf(strings.Join(elements[:k], "/"))
		rel := elements[k:n]
		for _, r := range rules {
			if !r.matches(rel) {
				continue
			}
			if r.dirOnly && !isDir {
				if !g.isDir(strings.Join(elements[:n], "/")) {
					continue
				}
				isDir = true
			}
			decided, ignored = true, !r.negate
		}
	}
	return decided && ignored
}

func (r gitRule) matches(rel []string) bool {
	if r.anchored {
		return matchElements(r.elements, rel)
	}
	ok, _ := path.Match(r.elements[0], rel[len(rel)-1])
	return ok
}

func (g *gitignore) isDir(rel string) bool {
	info, err := os.Lstat(g.ws.Abs(rel))
	return err == nil && info.IsDir()
}

// rulesOf returns the rules of dir's .gitignore, reading it on first use.
func (g *gitignore) rulesOf(dir string) []gitRule {
	g.mu.Lock()
	rules, ok := g.rules[dir]
	g.mu.Unlock()
	if ok {
		return rules
	}

	// Read outside the lock: two goroutines may read the same file at once
	// and store equal results, which is cheaper than serialising every
	// reader behind one slow disk.
	rules = g.read(dir)
	g.mu.Lock()
	g.rules[dir] = rules
	g.mu.Unlock()
	return rules
}

// read parses dir's .gitignore. A file that is missing, a link (git does not
// follow those either) or unreadable has no rules.
func (g *gitignore) read(dir string) []gitRule {
	file := path.Join(dir, gitignoreName)
	f, err := os.OpenFile(g.ws.Abs(file), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxGitignoreSize))
	if err != nil {
		return nil
	}
	return parseGitignore(data)
}

// parseGitignore turns the lines of a .gitignore into rules, dropping lines
// that are not valid patterns.
func parseGitignore(data []byte) []gitRule {
	var rules []gitRule
	lines := bufio.NewScanner(bytes.NewReader(data))
	lines.Buffer(nil, maxGitignoreSize)
	for lines.Scan() {
		if r, ok := parseGitRule(lines.Text()); ok {
			rules = append(rules, r)
		}
	}
	return rules
}

func parseGitRule(line string) (gitRule, bool) {
	line = strings.TrimSuffix(line, "\r")
	// Trailing spaces are dropped unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\\ ") {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return gitRule{}, false
	}

	var r gitRule
	if line[0] == '!' {
		r.negate, line = true, line[1:]
	} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		r.dirOnly, line = true, strings.TrimRight(line, "/")
	}
	// gitignore writes a negated bracket as [!...]; path.Match as [^...].
	line = strings.ReplaceAll(line, "[!", "[^")
	if line == "" {
		return gitRule{}, false
	}

	if strings.Contains(line, "/") {
		r.anchored = true
		r.elements = strings.Split(strings.TrimPrefix(line, "/"), "/")
		// "dir/**" names everything inside dir, not dir itself.
		if r.elements[len(r.elements)-1] == "**" {
			r.elements = append(r.elements, "*")
		}
	} else {
		r.elements = []string{line}
	}
	for _, el := range r.elements {
		if _, err := path.Match(el, ""); err != nil {
			return gitRule{}, false
		}
	}
	return r, true
}

// observe drops cached rules that a change at rel may have made stale: the
// rules of rel's directory when rel is a .gitignore, and those of rel and
// everything beneath it when rel is a directory that was read before (it
// may have been removed, replaced or moved).
func (g *gitignore) observe(rel string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if path.Base(rel) == gitignoreName {
		delete(g.rules, Parent(rel))
		return
	}
	if _, cached := g.rules[rel]; !cached {
		return
	}
	for dir := range g.rules {
		if IsBeneath(dir, rel) {
			delete(g.rules, dir)
		}
	}
}
