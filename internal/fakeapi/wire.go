package fakeapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// messagesRequest holds the fields of a Messages request the handler reads.
type messagesRequest struct {
	Model    string            `json:"model"`
	Stream   bool              `json:"stream"`
	Messages []requestMessage  `json:"messages"`
	Tools    []json.RawMessage `json:"tools"`
}

type requestMessage struct {
	Role string `json:"role"`
	// Content is a string or a list of blocks.
	Content json.RawMessage `json:"content"`
}

func (r messagesRequest) assistantMessages() int {
	n := 0
	for _, m := range r.Messages {
		if m.Role == "assistant" {
			n++
		}
	}
	return n
}

// lastToolResults returns the tool_result blocks of the last message when it
// is the user's: the outcome of the previous turn's tool calls.
func (r messagesRequest) lastToolResults() []ToolResult {
	if len(r.Messages) == 0 {
		return nil
	}
	last := r.Messages[len(r.Messages)-1]
	if last.Role != "user" {
		return nil
	}
	var blocks []struct {
		Type      string          `json:"type"`
		ToolUseID string          `json:"tool_use_id"`
		IsError   bool            `json:"is_error"`
		Content   json.RawMessage `json:"content"`
	}
	// A plain string content has no tool results; a list that fails to
	// decode is treated the same, since the handler only observes it.
	if err := json.Unmarshal(last.Content, &blocks); err != nil {
		return nil
	}
	var out []ToolResult
	for _, b := range blocks {
		if b.Type != "tool_result" {
			continue
		}
		out = append(out, ToolResult{ToolUseID: b.ToolUseID, IsError: b.IsError,
			Content: resultText(b.Content)})
	}
	return out
}

// resultText flattens a tool_result's content: a string, or a list of blocks
// of which the text ones count.
func resultText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var texts []string
	for _, b := range blocks {
		if b.Type == BlockText {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// message is a complete Messages response, also the payload of message_start.
type message struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []contentBlock `json:"content"`
	StopReason   any            `json:"stop_reason"`
	StopSequence any            `json:"stop_sequence"`
	Usage        usage          `json:"usage"`
}

type contentBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type usage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

type delta struct {
	Type        string `json:"type"`
	Text        string `json:"text,omitempty"`
	PartialJSON string `json:"partial_json,omitempty"`
}

// maxDelta bounds one input_json_delta or text_delta; the real API sends
// small deltas, and the CLI must reassemble them.
const maxDelta = 64 << 10

// writeStream writes resp as the server-sent events of a streamed response.
func writeStream(w http.ResponseWriter, resp response, bodyBytes int) error {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sse := &eventWriter{w: bufio.NewWriterSize(w, 64<<10)}

	sse.event("message_start", map[string]any{"type": "message_start", "message": message{
		ID: resp.id, Type: "message", Role: "assistant", Model: resp.model,
		Content: []contentBlock{}, Usage: usage{InputTokens: tokens(bodyBytes), OutputTokens: 1},
	}})
	sse.event("ping", map[string]string{"type": "ping"})

	output, stop := 0, "end_turn"
	for i, b := range resp.blocks {
		// The start event carries an empty body; the content follows in
		// deltas, as the real API sends it.
		start := contentBlock{Type: b.Type}
		var d delta
		var payload string
		switch b.Type {
		case BlockToolUse:
			start.ID, start.Name, start.Input = resp.ids[i], b.Name, json.RawMessage(`{}`)
			d.Type, payload = "input_json_delta", string(b.Input)
			stop = "tool_use"
		default:
			empty := ""
			start.Text = &empty
			d.Type, payload = "text_delta", b.Text
		}
		sse.event("content_block_start", map[string]any{
			"type": "content_block_start", "index": i, "content_block": start})
		for _, piece := range split(payload) {
			if d.Type == "input_json_delta" {
				d.PartialJSON = piece
			} else {
				d.Text = piece
			}
			sse.event("content_block_delta", map[string]any{
				"type": "content_block_delta", "index": i, "delta": d})
		}
		sse.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
		output += len(payload)
	}

	sse.event("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]int{"output_tokens": tokens(output)},
	})
	sse.event("message_stop", map[string]string{"type": "message_stop"})
	return sse.flush()
}

// split cuts s into about three pieces of at most maxDelta bytes each, at
// rune boundaries, so that every response exercises the CLI's reassembly of
// deltas. An empty s is one empty piece.
func split(s string) []string {
	size := min(max((len(s)+2)/3, 1), maxDelta)
	var out []string
	for len(s) > size {
		cut := size
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			// The piece is shorter than the first rune: take the rune whole.
			_, cut = utf8.DecodeRuneInString(s)
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

// eventWriter writes server-sent events and keeps the first error.
type eventWriter struct {
	w   *bufio.Writer
	err error
}

func (e *eventWriter) event(name string, data any) {
	if e.err != nil {
		return
	}
	payload, err := marshalCompact(data)
	if err != nil {
		e.err = fmt.Errorf("unable to encode %s: %w", name, err)
		return
	}
	_, e.err = fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", name, payload)
}

func (e *eventWriter) flush() error {
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}
