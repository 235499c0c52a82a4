package agent

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

func counterValue(vec *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(vec.WithLabelValues(label))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// The line builders write the shapes of DESIGN.md section 5; "$ROOT" in
// any string stands for the test's workspace.

func initLine(cwd string) string {
	return mustJSON(map[string]any{
		"type": "system", "subtype": "init", "cwd": cwd,
		"session_id": "sess-1", "model": "claude-test",
	})
}

func useLine(id, name string, input map[string]any) string {
	return useLineFrom(id, name, input, nil)
}

// useLineFrom is useLine for a subagent: parent is its Task's tool_use id.
func useLineFrom(id, name string, input map[string]any, parent any) string {
	return mustJSON(map[string]any{
		"type": "assistant", "parent_tool_use_id": parent,
		"message": map[string]any{"role": "assistant", "content": []any{
			map[string]any{"type": "tool_use", "id": id, "name": name, "input": input},
		}},
	})
}

func resultLine(id string, isError bool) string {
	return resultLineFrom(id, isError, nil)
}

func resultLineFrom(id string, isError bool, parent any) string {
	block := map[string]any{"type": "tool_result", "tool_use_id": id, "content": "ok"}
	if isError {
		block["is_error"] = true
	}
	return mustJSON(map[string]any{
		"type": "user", "parent_tool_use_id": parent,
		"message": map[string]any{"role": "user", "content": []any{block}},
	})
}

func write(path string) map[string]any { return map[string]any{"file_path": path} }

// counts names counters as "metric/label": events, parse_errors,
// tool_uses, tool_errors, drops.
func counts(m *metrics.Metrics) map[string]*prometheus.CounterVec {
	return map[string]*prometheus.CounterVec{
		"events": m.AgentEvents, "parse_errors": m.AgentParseErrors,
		"tool_uses": m.AgentToolUses, "tool_errors": m.AgentToolErrors,
		"drops": m.AgentPathsDrop,
	}
}

func TestDecoderLineKinds(t *testing.T) {
	cases := []struct {
		name   string
		lines  []string
		hints  []string
		counts map[string]float64
	}{{
		name:   "tool_use alone is no change: the file is not written yet",
		lines:  []string{initLine("$ROOT"), useLine("t1", "Write", write("$ROOT/a.go"))},
		counts: map[string]float64{"tool_uses/Write": 1, "events/assistant": 1},
	}, {
		name: "non-error result of Write confirms its path",
		lines: []string{initLine("$ROOT"), useLine("t1", "Write", write("$ROOT/a.go")),
			resultLine("t1", false)},
		hints: []string{"path a.go"},
	}, {
		name: "Edit, MultiEdit and NotebookEdit name their paths",
		lines: []string{initLine("$ROOT"),
			useLine("t1", "Edit", write("$ROOT/e.go")), resultLine("t1", false),
			useLine("t2", "MultiEdit", write("$ROOT/m.go")), resultLine("t2", false),
			useLine("t3", "NotebookEdit", map[string]any{"notebook_path": "$ROOT/n.ipynb"}),
			resultLine("t3", false)},
		hints: []string{"path e.go", "path m.go", "path n.ipynb"},
	}, {
		name: "error result gives no hint, only a tool error",
		lines: []string{initLine("$ROOT"), useLine("t1", "Edit", write("$ROOT/a.go")),
			resultLine("t1", true)},
		counts: map[string]float64{"tool_errors/Edit": 1},
	}, {
		name: "a result is paired once",
		lines: []string{initLine("$ROOT"), useLine("t1", "Write", write("$ROOT/a.go")),
			resultLine("t1", false), resultLine("t1", false)},
		hints: []string{"path a.go"},
	}, {
		name:   "result for a use never seen gives nothing",
		lines:  []string{initLine("$ROOT"), resultLine("t9", false), resultLine("t8", true)},
		counts: map[string]float64{"tool_errors/unknown": 1},
	}, {
		name: "relative path resolves against the init cwd",
		lines: []string{initLine("$ROOT/sub"), useLine("t1", "Write", write("pkg/a.go")),
			resultLine("t1", false)},
		hints: []string{"path sub/pkg/a.go"},
	}, {
		name:  "relative path before any init line resolves against the root",
		lines: []string{useLine("t1", "Write", write("./a.go")), resultLine("t1", false)},
		hints: []string{"path a.go"},
	}, {
		name: "relative path that climbs out of the workspace is dropped",
		lines: []string{initLine("$ROOT/sub"), useLine("t1", "Write", write("../../x.go")),
			resultLine("t1", false)},
		counts: map[string]float64{"drops/outside": 1},
	}, {
		name: "absolute path outside the workspace is dropped",
		lines: []string{initLine("$ROOT"), useLine("t1", "Edit", write("/etc/hosts")),
			resultLine("t1", false)},
		counts: map[string]float64{"drops/outside": 1},
	}, {
		name: "a sibling directory sharing the root's prefix is outside",
		lines: []string{initLine("$ROOT"), useLine("t1", "Write", write("$ROOT-x/a.go")),
			resultLine("t1", false)},
		counts: map[string]float64{"drops/outside": 1},
	}, {
		name: "file tool without a usable path is dropped as invalid",
		lines: []string{initLine("$ROOT"),
			useLine("t1", "Write", map[string]any{"content": "x"}), resultLine("t1", false),
			useLine("t2", "Write", map[string]any{"file_path": 42}), resultLine("t2", false),
			useLine("t3", "Write", write("$ROOT")), resultLine("t3", false)},
		counts: map[string]float64{"drops/invalid": 3, "parse_errors/bad_field": 0},
	}, {
		name: "finished Bash settles pending changes, failed or not",
		lines: []string{initLine("$ROOT"),
			useLine("b1", "Bash", map[string]any{"command": "make"}), resultLine("b1", false),
			useLine("b2", "Bash", map[string]any{"command": "false"}), resultLine("b2", true)},
		hints:  []string{"settle", "settle"},
		counts: map[string]float64{"tool_uses/Bash": 2, "tool_errors/Bash": 1},
	}, {
		name: "subagent tool pairs work the same",
		lines: []string{initLine("$ROOT"),
			useLine("task", "Task", map[string]any{"prompt": "docs"}),
			useLineFrom("s1", "Write", write("$ROOT/docs/a.md"), "task"),
			resultLineFrom("s1", false, "task"),
			resultLine("task", false)},
		hints:  []string{"path docs/a.md"},
		counts: map[string]float64{"tool_uses/Task": 1, "tool_uses/Write": 1},
	}, {
		name: "several blocks on one line are each handled",
		lines: []string{initLine("$ROOT"),
			`{"type":"assistant","message":{"content":[{"type":"text","text":"two"},` +
				`{"type":"tool_use","id":"a","name":"Write","input":{"file_path":"x"}},` +
				`{"type":"tool_use","id":"b","name":"Bash","input":{"command":"ls"}}]}}`,
			`{"type":"user","message":{"content":[` +
				`{"type":"tool_result","tool_use_id":"b","content":"x"},` +
				`{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"ok"}]}]}}`},
		hints: []string{"settle", "path x"},
	}, {
		name: "key order does not matter",
		lines: []string{
			`{"cwd":"$ROOT/sub","session_id":"s","subtype":"init","type":"system"}`,
			`{"message":{"content":[{"input":{"file_path":"a"},"name":"Write","id":"t1",` +
				`"type":"tool_use"}]},"type":"assistant"}`,
			`{"message":{"content":[{"is_error":false,"tool_use_id":"t1","type":"tool_result"}]},` +
				`"type":"user"}`},
		hints: []string{"path sub/a"},
	}, {
		name: "tool names become bounded labels",
		lines: []string{
			useLine("1", "mcp__github__create_issue", nil), useLine("2", "Frobnicate", nil),
			useLine("3", "Read", nil), useLine("4", "", nil)},
		counts: map[string]float64{"tool_uses/mcp": 1, "tool_uses/other": 2, "tool_uses/Read": 1},
	}, {
		name: "user prompt with plain text content is no error",
		lines: []string{
			`{"type":"user","message":{"role":"user","content":"write a server"}}`},
		counts: map[string]float64{"events/user": 1, "parse_errors/bad_field": 0},
	}, {
		name: "content of the wrong shape counts as bad_field",
		lines: []string{
			`{"type":"user","message":{"content":42}}`,
			`{"type":"assistant","message":{"content":[{"type":"tool_use","id":7,"name":"Write"}]}}`,
			`{"type":"result","num_turns":"three","total_cost_usd":0.5}`,
		},
		counts: map[string]float64{"parse_errors/bad_field": 3, "tool_uses/Write": 0},
	}, {
		name: "wrong shapes in types the decoder ignores are quiet",
		lines: []string{
			`{"type":"stream_event","message":"text","event":{"type":"message_start"}}`,
			`{"type":"system","subtype":"api_retry","model":{"id":1}}`,
			`{"type":"mystery","message":{"content":{"a":1}}}`,
			`{"no_type":true}`},
		counts: map[string]float64{
			"events/stream_event": 1, "events/system": 1, "events/other": 2,
			"parse_errors/bad_field": 0},
	}, {
		name: "every known type keeps its label",
		lines: []string{`{"type":"rate_limit_event"}`, `{"type":"stream_event"}`,
			`{"type":"result"}`, `{"type":"system","subtype":"compact_boundary"}`},
		counts: map[string]float64{"events/rate_limit_event": 1, "events/stream_event": 1,
			"events/result": 1, "events/system": 1, "events/other": 0},
	}, {
		name: "non-JSON lines are counted and skipped",
		lines: []string{"npm WARN engine {node: '>=22'}", initLine("$ROOT"), "[1,2]", "42",
			`{"type":"user", oops}`, useLine("t1", "Write", write("a")), resultLine("t1", false)},
		hints:  []string{"path a"},
		counts: map[string]float64{"parse_errors/not_json": 4},
	}, {
		name: "a truncated object mid-stream is not JSON; the next line decodes",
		lines: []string{`{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1"`,
			useLine("t2", "Write", write("b")), resultLine("t2", false)},
		hints:  []string{"path b"},
		counts: map[string]float64{"parse_errors/not_json": 1},
	}, {
		name: "CRLF endings and blank lines are tolerated",
		lines: []string{useLine("t1", "Write", write("a")) + "\r", "", "  \r",
			resultLine("t1", false) + "\r"},
		hints:  []string{"path a"},
		counts: map[string]float64{"parse_errors/not_json": 0},
	}, {
		name: "escape sequences glued to objects are stripped",
		lines: []string{"\x1b[?25l" + useLine("t1", "Write", write("a")),
			resultLine("t1", false) + "\x1b[?25h",
			"\x1b]0;claude\x07\x1b[2K\x1b(B" + useLine("t2", "Write", write("b")) + "\x1b[0m",
			"\x1b7" + resultLine("t2", false) + "\x1b8",
			"\x1b[?25h"},
		hints:  []string{"path a", "path b"},
		counts: map[string]float64{"parse_errors/not_json": 0},
	}}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			d, rec, m := newTestDecoder(t, root, nil)
			text := strings.ReplaceAll(strings.Join(tc.lines, "\n")+"\n", "$ROOT", root)
			feed(t, d, []byte(text))

			if got := rec.got(); !slices.Equal(got, tc.hints) {
				t.Errorf("hints = %q, want %q", got, tc.hints)
			}
			vecs := counts(m)
			for key, want := range tc.counts {
				metric, label, _ := strings.Cut(key, "/")
				if got := counterValue(vecs[metric], label); got != want {
					t.Errorf("%s = %v, want %v", key, got, want)
				}
			}
		})
	}
}

func TestDecoderResultUpdatesSessionAndCounters(t *testing.T) {
	d, _, m := newTestDecoder(t, t.TempDir(), nil)
	feed(t, d, []byte(initLine("/w")+"\n"+
		useLine("t1", "Read", nil)+"\n"+useLine("t2", "Bash", nil)+"\n"+
		`{"type":"result","subtype":"success","is_error":false,"num_turns":7,`+
		`"duration_ms":12873,"total_cost_usd":0.0421,"usage":{"input_tokens":31,`+
		`"output_tokens":812,"cache_read_input_tokens":40960,"cache_creation_input_tokens":5120}}`+
		"\n"))

	want := Session{ID: "sess-1", Model: "claude-test", CWD: "/w", ToolUses: 2,
		ResultSeen: true, ResultAt: resultTime, NumTurns: 7, CostUSD: 0.0421, DurationMS: 12873}
	if got := d.Session(); got != want {
		t.Errorf("session:\n got %+v\nwant %+v", got, want)
	}
	for label, want := range map[string]float64{
		"input": 31, "output": 812, "cache_read": 40960, "cache_creation": 5120,
	} {
		if got := counterValue(m.AgentTokens, label); got != want {
			t.Errorf("tokens{kind=%q} = %v, want %v", label, got, want)
		}
	}
	if got := testutil.ToFloat64(m.AgentCost); got != 0.0421 {
		t.Errorf("cost = %v, want 0.0421", got)
	}
	if got := testutil.ToFloat64(m.AgentTurns); got != 7 {
		t.Errorf("turns = %v, want 7", got)
	}
	if got := counterValue(m.AgentSessions, "success"); got != 1 {
		t.Errorf("sessions{outcome=success} = %v, want 1", got)
	}
}

func TestDecoderResultOutcome(t *testing.T) {
	cases := []struct {
		line    string
		outcome string
	}{
		{`{"type":"result","subtype":"success","is_error":false}`, "success"},
		{`{"type":"result","subtype":"success","is_error":true}`, "error"},
		{`{"type":"result","subtype":"error_max_turns","is_error":false}`, "error"},
		{`{"type":"result","subtype":"error_during_execution","is_error":true}`, "error"},
	}
	for _, tc := range cases {
		d, _, m := newTestDecoder(t, t.TempDir(), nil)
		feed(t, d, []byte(tc.line+"\n"))
		if got := counterValue(m.AgentSessions, tc.outcome); got != 1 {
			t.Errorf("%s: sessions{outcome=%q} = %v, want 1", tc.line, tc.outcome, got)
		}
		if got := d.Session().IsError; got != (tc.outcome == "error") {
			t.Errorf("%s: session IsError = %v", tc.line, got)
		}
	}
}

// Counters panic on negative increments; the figures come from the child.
func TestDecoderIgnoresNegativeFigures(t *testing.T) {
	d, _, m := newTestDecoder(t, t.TempDir(), nil)
	feed(t, d, []byte(`{"type":"result","num_turns":-3,"total_cost_usd":-1,`+
		`"usage":{"input_tokens":-5,"output_tokens":1e300}}`+"\n"))
	if got := testutil.ToFloat64(m.AgentCost); got != 0 {
		t.Errorf("cost = %v, want 0", got)
	}
	if got := counterValue(m.AgentTokens, "input"); got != 0 {
		t.Errorf("input tokens = %v, want 0", got)
	}
	if got := d.Session(); !got.ResultSeen || got.NumTurns != 0 {
		t.Errorf("session %+v: want the result seen with 0 turns", got)
	}
}

func TestDecoderNewSessionReplacesFigures(t *testing.T) {
	d, _, _ := newTestDecoder(t, t.TempDir(), nil)
	feed(t, d, []byte(initLine("/a")+"\n"+useLine("t1", "Read", nil)+"\n"+
		`{"type":"result","num_turns":1}`+"\n"+
		`{"type":"system","subtype":"init","session_id":"sess-2","cwd":"/b","model":"m2"}`+"\n"))
	want := Session{ID: "sess-2", Model: "m2", CWD: "/b"}
	if got := d.Session(); got != want {
		t.Errorf("session = %+v, want %+v", got, want)
	}
}

func TestDecoderDecodesFourMegabyteLine(t *testing.T) {
	root := t.TempDir()
	d, rec, m := newTestDecoder(t, root, nil)
	content := strings.Repeat("0123456789abcdef", 4<<20/16)
	big := useLine("t1", "Write", map[string]any{"file_path": root + "/big.bin", "content": content})
	feed(t, d, []byte(big+"\n"+resultLine("t1", false)+"\n"), 64<<10)

	if got := rec.got(); !slices.Equal(got, []string{"path big.bin"}) {
		t.Errorf("hints = %q, want [path big.bin]", got)
	}
	if got := counterValue(m.AgentParseErrors, ReasonTooLong); got != 0 {
		t.Errorf("too_long = %v, want 0", got)
	}
}

func TestDecoderSkipsLineOverCapAndKeepsGoing(t *testing.T) {
	root := t.TempDir()
	d, rec, m := newTestDecoder(t, root, func(c *Config) { c.MaxLineBytes = 1024 })
	long := useLine("t1", "Write", map[string]any{"file_path": "a", "content": strings.Repeat("x", 4096)})
	text := long + "\n" + useLine("t2", "Write", write("b")) + "\n" +
		resultLine("t1", false) + "\n" + resultLine("t2", false) + "\n"

	for _, size := range []int{len(text), 100, 1} {
		rec.hints = nil
		feed(t, d, []byte(text), size)
		if got := rec.got(); !slices.Equal(got, []string{"path b"}) {
			t.Errorf("chunks of %d: hints = %q, want [path b]", size, got)
		}
	}
	if got := counterValue(m.AgentParseErrors, ReasonTooLong); got != 3 {
		t.Errorf("too_long = %v, want 3 (once per feed)", got)
	}
}

func TestDecoderCloseHandlesLastLineWithoutNewline(t *testing.T) {
	cases := []struct {
		name      string
		tail      string
		hints     []string
		truncated float64
		notJSON   float64
	}{
		{"a complete object is decoded", resultLine("t1", false), []string{"path a"}, 0, 0},
		{"an object cut off is counted as truncated", `{"type":"user","message":{"con`, nil, 1, 0},
		{"a cursor sequence at exit is nothing", "\x1b[?25h", nil, 0, 0},
		{"text cut off is not JSON", "Killed", nil, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, rec, m := newTestDecoder(t, t.TempDir(), nil)
			feed(t, d, []byte(useLine("t1", "Write", write("a"))+"\n"+tc.tail))
			if got := rec.got(); !slices.Equal(got, tc.hints) {
				t.Errorf("hints = %q, want %q", got, tc.hints)
			}
			if got := counterValue(m.AgentParseErrors, ReasonTruncated); got != tc.truncated {
				t.Errorf("truncated = %v, want %v", got, tc.truncated)
			}
			if got := counterValue(m.AgentParseErrors, ReasonNotJSON); got != tc.notJSON {
				t.Errorf("not_json = %v, want %v", got, tc.notJSON)
			}
		})
	}
}

func TestDecoderForgetsOldestPendingToolBeyondBound(t *testing.T) {
	d, rec, _ := newTestDecoder(t, t.TempDir(), func(c *Config) { c.MaxPendingTools = 2 })
	feed(t, d, []byte(strings.Join([]string{
		useLine("t1", "Write", write("one")), useLine("t2", "Write", write("two")),
		useLine("t3", "Write", write("three")),
		resultLine("t1", false), resultLine("t2", false), resultLine("t3", false),
	}, "\n")+"\n"))
	if got, want := rec.got(), []string{"path two", "path three"}; !slices.Equal(got, want) {
		t.Errorf("hints = %q, want %q", got, want)
	}
	if n := d.pending.len(); n != 0 {
		t.Errorf("%d tool uses still pending after all results", n)
	}
}

func TestNewDecoderNeedsWorkspaceAndSink(t *testing.T) {
	ws, err := change.NewWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink := change.SinkFunc(func(change.Hint) {})
	if _, err := NewDecoder(Config{Sink: sink}); !errors.Is(err, ErrNoWorkspace) {
		t.Errorf("without a workspace: err = %v, want ErrNoWorkspace", err)
	}
	if _, err := NewDecoder(Config{Workspace: ws}); !errors.Is(err, ErrNoSink) {
		t.Errorf("without a sink: err = %v, want ErrNoSink", err)
	}
	if _, err := NewDecoder(Config{Workspace: ws, Sink: sink}); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}
