package fakeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Block types a scripted turn may hold.
const (
	BlockText    = "text"
	BlockToolUse = "tool_use"
)

// ErrUnknownVar reports a {{name}} placeholder that neither the caller nor
// the session's defaults define.
var ErrUnknownVar = errors.New("unknown placeholder")

// ErrBadSession reports a session file that parses as JSON but does not
// describe a playable session.
var ErrBadSession = errors.New("invalid session")

// Session is a scripted conversation: Turns[N] is the assistant's answer once
// the conversation already holds N assistant messages.
type Session struct {
	// Description says what the session does, for people reading the file.
	Description string `json:"description,omitempty"`
	// Defaults holds placeholder values used when the caller supplies none.
	Defaults map[string]string `json:"defaults,omitempty"`
	Turns    []Turn            `json:"turns"`
}

// Turn is one scripted assistant response.
type Turn struct {
	Blocks []Block `json:"blocks"`
}

// Block is one content block of a response: text, or a tool call.
type Block struct {
	// Type is BlockText or BlockToolUse.
	Type string `json:"type"`
	// Text is the text of a BlockText block.
	Text string `json:"text,omitempty"`
	// Name is the tool of a BlockToolUse block ("Write", "Bash", ...).
	Name string `json:"name,omitempty"`
	// Input is the tool's input object, with placeholders already expanded.
	Input json.RawMessage `json:"input,omitempty"`
}

// ToolUses returns how many tool calls the turn makes.
func (t Turn) ToolUses() int {
	n := 0
	for _, b := range t.Blocks {
		if b.Type == BlockToolUse {
			n++
		}
	}
	return n
}

// LoadSession reads a session file and expands its placeholders; see
// ParseSession.
func LoadSession(path string, vars map[string]string) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("unable to read session: %w", err)
	}
	s, err := ParseSession(data, vars)
	if err != nil {
		return nil, fmt.Errorf("unable to load session %s: %w", path, err)
	}
	return s, nil
}

// ParseSession decodes a session and expands the placeholders in every string
// of its text blocks and tool inputs (keys are left alone):
//
//   - {{name}} becomes vars[name], or the session's Defaults[name] when the
//     caller supplies none; any other name is ErrUnknownVar.
//   - {{fill:BYTES:UNIT}}, after the names are expanded, becomes UNIT
//     repeated and cut to exactly BYTES bytes, so a file can script a large
//     write and stay small. BYTES may itself be a placeholder
//     ({{fill:{{big_bytes}}:x}}). The cut must not split a UTF-8 sequence.
//
// Values are substituted as text, so a path with quotes or non-ASCII letters
// stays a single JSON string.
func ParseSession(data []byte, vars map[string]string) (*Session, error) {
	// Inputs are decoded as generic values so that their strings can be
	// expanded before they are encoded again for the wire.
	var raw struct {
		Description string            `json:"description"`
		Defaults    map[string]string `json:"defaults"`
		Turns       []struct {
			Blocks []struct {
				Type  string `json:"type"`
				Text  string `json:"text"`
				Name  string `json:"name"`
				Input any    `json:"input"`
			} `json:"blocks"`
		} `json:"turns"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("unable to decode session: %w", err)
	}

	x := expander{vars: vars, defaults: raw.Defaults}
	s := &Session{Description: raw.Description, Defaults: raw.Defaults}
	for i, rt := range raw.Turns {
		var t Turn
		for j, rb := range rt.Blocks {
			b, err := x.block(rb.Type, rb.Text, rb.Name, rb.Input)
			if err != nil {
				return nil, fmt.Errorf("turn %d block %d: %w", i, j, err)
			}
			t.Blocks = append(t.Blocks, b)
		}
		if len(t.Blocks) == 0 {
			return nil, fmt.Errorf("turn %d: %w: no blocks", i, ErrBadSession)
		}
		s.Turns = append(s.Turns, t)
	}
	if len(s.Turns) == 0 {
		return nil, fmt.Errorf("%w: no turns", ErrBadSession)
	}
	return s, nil
}

type expander struct {
	vars     map[string]string
	defaults map[string]string
}

func (x expander) block(typ, text, name string, input any) (Block, error) {
	switch typ {
	case BlockText:
		if name != "" || input != nil {
			return Block{}, fmt.Errorf("%w: a text block has no name or input", ErrBadSession)
		}
		t, err := x.expand(text)
		if err != nil {
			return Block{}, err
		}
		return Block{Type: typ, Text: t}, nil
	case BlockToolUse:
		if name == "" || text != "" {
			return Block{}, fmt.Errorf("%w: a tool_use block has a name and no text", ErrBadSession)
		}
		if _, ok := input.(map[string]any); !ok {
			return Block{}, fmt.Errorf("%w: tool_use input must be an object", ErrBadSession)
		}
		expanded, err := x.walk(input)
		if err != nil {
			return Block{}, err
		}
		enc, err := marshalCompact(expanded)
		if err != nil {
			return Block{}, fmt.Errorf("unable to encode input: %w", err)
		}
		return Block{Type: typ, Name: name, Input: enc}, nil
	}
	return Block{}, fmt.Errorf("%w: block type %q", ErrBadSession, typ)
}

// walk expands every string inside a decoded JSON value.
func (x expander) walk(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return x.expand(v)
	case []any:
		for i := range v {
			e, err := x.walk(v[i])
			if err != nil {
				return nil, err
			}
			v[i] = e
		}
	case map[string]any:
		for k := range v {
			e, err := x.walk(v[k])
			if err != nil {
				return nil, err
			}
			v[k] = e
		}
	}
	return v, nil
}

var (
	namePattern = regexp.MustCompile(`\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}`)
	fillPattern = regexp.MustCompile(`(?s)\{\{fill:([0-9]+):(.+?)\}\}`)
)

// maxFill bounds one {{fill}} so that a typo cannot exhaust memory.
const maxFill = 64 << 20

func (x expander) expand(s string) (string, error) {
	var err error
	s = namePattern.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-2]
		if v, ok := x.vars[name]; ok {
			return v
		}
		if v, ok := x.defaults[name]; ok {
			return v
		}
		if err == nil {
			err = fmt.Errorf("%w %q", ErrUnknownVar, m)
		}
		return m
	})
	if err != nil {
		return "", err
	}
	s = fillPattern.ReplaceAllStringFunc(s, func(m string) string {
		parts := fillPattern.FindStringSubmatch(m)
		n, perr := strconv.Atoi(parts[1])
		if perr != nil || n > maxFill {
			err = fmt.Errorf("%w: fill size %q must be at most %d", ErrBadSession, parts[1], maxFill)
			return m
		}
		filled := fill(n, parts[2])
		if !utf8.ValidString(filled) {
			err = fmt.Errorf("%w: fill of %d bytes splits a UTF-8 sequence", ErrBadSession, n)
			return m
		}
		return filled
	})
	if err != nil {
		return "", err
	}
	return s, nil
}

// fill returns unit repeated and cut to exactly n bytes.
func fill(n int, unit string) string {
	return strings.Repeat(unit, n/len(unit)+1)[:n]
}

// marshalCompact encodes v without escaping <, > and &, so that a Bash
// command reads in the transcript as it was written.
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
