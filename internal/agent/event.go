package agent

import "encoding/json"

// event is the union of the stream-json fields the decoder reads. One
// struct for every type keeps decoding to a single pass over the line,
// which matters for lines of many megabytes; fields that a type does not
// carry stay zero. Everything else on the line (tool inputs other than the
// path, tool result content, text) is skipped by the decoder, never stored.
type event struct {
	Type    string `json:"type"`
	Subtype string `json:"subtype"`

	// system, subtype init.
	CWD       string `json:"cwd"`
	SessionID string `json:"session_id"`
	Model     string `json:"model"`

	// assistant and user.
	Message struct {
		Content []block `json:"content"`
	} `json:"message"`

	// result. Numbers are float64 so that a count printed as 3.0 still
	// decodes; the decoder checks they are finite and not negative.
	IsError      bool    `json:"is_error"`
	NumTurns     float64 `json:"num_turns"`
	DurationMS   float64 `json:"duration_ms"`
	TotalCostUSD float64 `json:"total_cost_usd"`
	Usage        struct {
		InputTokens              float64 `json:"input_tokens"`
		OutputTokens             float64 `json:"output_tokens"`
		CacheReadInputTokens     float64 `json:"cache_read_input_tokens"`
		CacheCreationInputTokens float64 `json:"cache_creation_input_tokens"`
	} `json:"usage"`
}

// block is one element of message.content: a tool_use on assistant lines,
// a tool_result on user lines, or a kind the decoder ignores (text,
// thinking, image, ...).
type block struct {
	Type string `json:"type"`

	// tool_use.
	ID    string `json:"id"`
	Name  string `json:"name"`
	Input struct {
		FilePath     anyString `json:"file_path"`
		NotebookPath anyString `json:"notebook_path"`
	} `json:"input"`

	// tool_result.
	ToolUseID string `json:"tool_use_id"`
	IsError   bool   `json:"is_error"`
}

// anyString is a string field that tolerates any JSON value: tools other
// than the file tools (MCP tools above all) may use file_path for something
// that is not a string, and that is not a malformed line. A value that is
// not a string reads as "", which a file tool then reports as an invalid
// path.
type anyString string

func (s *anyString) UnmarshalJSON(data []byte) error {
	if len(data) == 0 || data[0] != '"' {
		*s = ""
		return nil
	}
	var v string
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*s = anyString(v)
	return nil
}
