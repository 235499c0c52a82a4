package watch

import (
	"slices"
	"testing"
)

func TestDirSetRemoveTreeRemovesExactlyTheSubtree(t *testing.T) {
	members := []string{"", "a", "a/b", "a/b/c", "ab", "x", "x/a", "x/a/b"}
	tests := []struct {
		dir          string
		removed      []string
		remainingLen int
	}{
		{dir: "a", removed: []string{"a", "a/b", "a/b/c"}, remainingLen: 5},
		{dir: "a/b/c", removed: []string{"a/b/c"}, remainingLen: 7},
		{dir: "x/a", removed: []string{"x/a", "x/a/b"}, remainingLen: 6},
		{dir: "", removed: members, remainingLen: 0},
		{dir: "missing", removed: nil, remainingLen: 8},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			s := newDirSet()
			for _, m := range members {
				s.add(m)
			}
			got := s.removeTree(tt.dir)
			slices.Sort(got)
			want := slices.Clone(tt.removed)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("removeTree(%q) = %q, want %q", tt.dir, got, want)
			}
			if s.len() != tt.remainingLen {
				t.Errorf("len after removeTree(%q) = %d, want %d", tt.dir, s.len(), tt.remainingLen)
			}
			for _, r := range tt.removed {
				if s.has(r) {
					t.Errorf("%q still a member", r)
				}
			}
		})
	}
}

func TestDirSetFindsMembersBeneathANonMember(t *testing.T) {
	s := newDirSet()
	s.add("a/b")
	s.add("a/b/c")
	if got := s.removeTree("a"); len(got) != 2 || s.len() != 0 {
		t.Errorf("removeTree(a) = %q, leaving %d; want a/b and a/b/c removed", got, s.len())
	}
}

func TestDirSetReAddAfterRemove(t *testing.T) {
	s := newDirSet()
	s.add("a")
	s.add("a/b")
	s.removeTree("a")
	s.add("a")
	if got := s.removeTree("a"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("removeTree(a) after re-adding only a = %q, want [a]", got)
	}
}
