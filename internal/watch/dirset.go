package watch

import "github.com/agent-supervisor/supervisor/internal/change"

// dirSet holds workspace-relative directory paths and finds everything
// beneath one of them in time proportional to the answer, not to the whole
// set: `rm -r` of a large tree removes every directory one by one, and each
// removal asks for what lies beneath.
type dirSet struct {
	members  map[string]struct{}
	children map[string]map[string]struct{} // parent -> members directly in it
}

func newDirSet() *dirSet {
	return &dirSet{
		members:  make(map[string]struct{}),
		children: make(map[string]map[string]struct{}),
	}
}

func (s *dirSet) len() int { return len(s.members) }

func (s *dirSet) has(dir string) bool {
	_, ok := s.members[dir]
	return ok
}

func (s *dirSet) add(dir string) {
	if s.has(dir) {
		return
	}
	s.members[dir] = struct{}{}
	if dir == "" {
		return
	}
	parent := change.Parent(dir)
	if s.children[parent] == nil {
		s.children[parent] = make(map[string]struct{})
	}
	s.children[parent][dir] = struct{}{}
}

// removeTree removes dir and every member beneath it, and returns what it
// removed. Members beneath dir are found even when dir itself is not one.
func (s *dirSet) removeTree(dir string) []string {
	var removed []string
	pending := []string{dir}
	for len(pending) > 0 {
		d := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if s.has(d) {
			removed = append(removed, d)
			delete(s.members, d)
		}
		for child := range s.children[d] {
			pending = append(pending, child)
		}
		delete(s.children, d)
	}

	if dir != "" {
		parent := change.Parent(dir)
		delete(s.children[parent], dir)
		if len(s.children[parent]) == 0 {
			delete(s.children, parent)
		}
	}
	return removed
}

// all returns every member, in no order.
func (s *dirSet) all() []string {
	out := make([]string, 0, len(s.members))
	for d := range s.members {
		out = append(out, d)
	}
	return out
}
