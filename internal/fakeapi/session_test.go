package fakeapi

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// oneWrite wraps a Write input in a one-turn session.
func oneWrite(input string) string {
	return `{"turns": [{"blocks": [{"type": "tool_use", "name": "Write", "input": ` + input + `}]}]}`
}

func TestParseSessionExpandsPlaceholdersInStrings(t *testing.T) {
	tests := []struct {
		name  string
		input string
		vars  map[string]string
		want  map[string]any
	}{{
		name:  "caller variable",
		input: `{"file_path": "{{workspace}}/a.txt"}`,
		vars:  map[string]string{"workspace": "/w"},
		want:  map[string]any{"file_path": "/w/a.txt"},
	}, {
		name:  "quotes and non-ASCII stay one string",
		input: `{"file_path": "{{workspace}}/x"}`,
		vars:  map[string]string{"workspace": `/tmp/a "b" \ café`},
		want:  map[string]any{"file_path": `/tmp/a "b" \ café/x`},
	}, {
		name:  "nested values and repeated names",
		input: `{"edits": [{"old": "{{w}}{{w}}"}], "n": 3, "ok": true}`,
		vars:  map[string]string{"w": "ab"},
		want: map[string]any{"edits": []any{map[string]any{"old": "abab"}},
			"n": float64(3), "ok": true},
	}, {
		name:  "keys are not expanded",
		input: `{"{{w}}": "v"}`,
		vars:  map[string]string{"w": "x"},
		want:  map[string]any{"{{w}}": "v"},
	}, {
		name:  "fill repeats and cuts",
		input: `{"content": "<{{fill:7:abc}}>"}`,
		want:  map[string]any{"content": "<abcabca>"},
	}, {
		name:  "fill size from a variable",
		input: `{"content": "{{fill:{{n}}:xy}}"}`,
		vars:  map[string]string{"n": "3"},
		want:  map[string]any{"content": "xyx"},
	}, {
		name:  "fill unit with newline",
		input: `{"content": "{{fill:4:a\n}}"}`,
		want:  map[string]any{"content": "a\na\n"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSession([]byte(oneWrite(tt.input)), tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(s.Turns[0].Blocks[0].Input, &got); err != nil {
				t.Fatalf("input %s is not JSON: %v", s.Turns[0].Blocks[0].Input, err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("input %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestParseSessionPrefersCallerVarsOverDefaults(t *testing.T) {
	doc := `{"defaults": {"a": "default-a", "b": "default-b"},
		"turns": [{"blocks": [{"type": "text", "text": "{{a}} {{b}}"}]}]}`
	s, err := ParseSession([]byte(doc), map[string]string{"a": "caller-a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Turns[0].Blocks[0].Text; got != "caller-a default-b" {
		t.Errorf("text %q, want %q", got, "caller-a default-b")
	}
}

func TestParseSessionRejectsBadSessions(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want error // nil: any error will do
	}{
		{"unknown placeholder", oneWrite(`{"file_path": "{{nope}}/a"}`), ErrUnknownVar},
		{"unknown placeholder in text",
			`{"turns": [{"blocks": [{"type": "text", "text": "{{nope}}"}]}]}`, ErrUnknownVar},
		{"no turns", `{"turns": []}`, ErrBadSession},
		{"turn without blocks", `{"turns": [{"blocks": []}]}`, ErrBadSession},
		{"unknown block type", `{"turns": [{"blocks": [{"type": "image"}]}]}`, ErrBadSession},
		{"tool_use without name", `{"turns": [{"blocks": [{"type": "tool_use", "input": {}}]}]}`,
			ErrBadSession},
		{"tool_use input not an object", oneWrite(`"just a string"`), ErrBadSession},
		{"text with input",
			`{"turns": [{"blocks": [{"type": "text", "text": "x", "input": {}}]}]}`, ErrBadSession},
		{"fill too large", oneWrite(`{"content": "{{fill:999999999999:x}}"}`), ErrBadSession},
		{"fill splits a rune", oneWrite(`{"content": "{{fill:1:é}}"}`), ErrBadSession},
		{"misspelt field", `{"turns": [{"blocks": [{"type": "text", "txt": "x"}]}]}`, nil},
		{"not JSON", `turns: []`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSession([]byte(tt.doc), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLoadSessionReportsMissingFile(t *testing.T) {
	_, err := LoadSession(filepath.Join(t.TempDir(), "absent.json"), nil)
	if err == nil || !strings.Contains(err.Error(), "unable to read session") {
		t.Errorf("error %v, want an unable to read session error", err)
	}
}

// sessionsDir holds the sessions that the end-to-end tests and cmd/fakeapi
// play.
const sessionsDir = "../../testdata/sessions"

func TestShippedSessionsLoad(t *testing.T) {
	vars := map[string]string{"workspace": "/ws", "outside": "/out"}
	tests := []struct {
		file     string
		turns    int
		toolUses int
	}{
		{"e2e.json", 10, 10},
		{"demo.json", 5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s, err := LoadSession(filepath.Join(sessionsDir, tt.file), vars)
			if err != nil {
				t.Fatal(err)
			}
			toolUses := 0
			for _, turn := range s.Turns {
				toolUses += turn.ToolUses()
			}
			if len(s.Turns) != tt.turns || toolUses != tt.toolUses {
				t.Errorf("%d turns with %d tool uses, want %d with %d",
					len(s.Turns), toolUses, tt.turns, tt.toolUses)
			}
			if last := s.Turns[len(s.Turns)-1]; last.ToolUses() != 0 {
				t.Error("the last turn makes tool calls; the CLI would never finish")
			}
		})
	}
}

func TestE2ESessionCarriesTheLargeWriteInFull(t *testing.T) {
	for _, size := range []int{2 << 20, 2048} {
		vars := map[string]string{"workspace": "/ws", "outside": "/out"}
		if size != 2<<20 {
			vars["big_bytes"] = strconv.Itoa(size) // the default is 2 MiB
		}
		s, err := LoadSession(filepath.Join(sessionsDir, "e2e.json"), vars)
		if err != nil {
			t.Fatal(err)
		}
		var input struct {
			FilePath string `json:"file_path"`
			Content  string `json:"content"`
		}
		if err := json.Unmarshal(s.Turns[3].Blocks[0].Input, &input); err != nil {
			t.Fatal(err)
		}
		if input.FilePath != "/ws/data/big.txt" || len(input.Content) != size {
			t.Errorf("turn 3 writes %d bytes to %s, want %d to /ws/data/big.txt",
				len(input.Content), input.FilePath, size)
		}
	}
}
