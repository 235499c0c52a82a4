package fakeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startHandler serves the three-turn test session on loopback.
func startHandler(t *testing.T, configure func(*Handler)) (*Handler, *Server) {
	t.Helper()
	s, err := LoadSession("testdata/three_turns.json", map[string]string{"dir": "/work dir"})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Session: s}
	if configure != nil {
		configure(h)
	}
	srv, err := Listen("", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return h, srv
}

// conversation builds a Messages request body holding the user's prompt,
// then `assistants` assistant messages each followed by a user message.
// extra is appended to the last user message's content.
func conversation(t *testing.T, stream bool, assistants int, extra ...any) []byte {
	t.Helper()
	msgs := []any{map[string]any{"role": "user", "content": "do the work"}}
	for i := 0; i < assistants; i++ {
		msgs = append(msgs,
			map[string]any{"role": "assistant", "content": []any{
				map[string]any{"type": "text", "text": fmt.Sprintf("turn %d", i)}}},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "go on"}}})
	}
	if len(extra) > 0 {
		last := msgs[len(msgs)-1].(map[string]any)
		if s, ok := last["content"].(string); ok {
			last["content"] = []any{map[string]any{"type": "text", "text": s}}
		}
		last["content"] = append(last["content"].([]any), extra...)
	}
	body, err := json.Marshal(map[string]any{
		"model": "claude-test", "max_tokens": 1000, "stream": stream, "messages": msgs,
		"tools": []any{map[string]any{"name": "Write"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func post(t *testing.T, url string, body []byte) *http.Response {
	t.Helper()
	resp, err := http.Post(url+MessagesPath+"?beta=true", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// streamed is a response reassembled from its server-sent events, the way a
// client of the streaming API rebuilds it.
type streamed struct {
	events     []string // event names in order
	id         string
	model      string
	stopReason string
	blocks     []streamedBlock
}

type streamedBlock struct {
	Type   string
	ID     string
	Name   string
	Text   string
	Input  string // concatenated partial_json
	Deltas int
}

// readStream parses an SSE body. Every data line must be JSON whose "type"
// repeats the event name.
func readStream(t *testing.T, body io.Reader) streamed {
	t.Helper()
	var out streamed
	var name string
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			name = ""
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
			out.events = append(out.events, name)
		case strings.HasPrefix(line, "data: "):
			applyEvent(t, &out, name, []byte(strings.TrimPrefix(line, "data: ")))
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func applyEvent(t *testing.T, out *streamed, name string, data []byte) {
	t.Helper()
	var ev struct {
		Type    string `json:"type"`
		Index   int    `json:"index"`
		Message struct {
			ID    string `json:"id"`
			Model string `json:"model"`
		} `json:"message"`
		ContentBlock struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"content_block"`
		Delta struct {
			Type        string `json:"type"`
			Text        string `json:"text"`
			PartialJSON string `json:"partial_json"`
			StopReason  string `json:"stop_reason"`
		} `json:"delta"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("event %s: data is not JSON: %v", name, err)
	}
	if ev.Type != name {
		t.Fatalf("event %s carries type %q", name, ev.Type)
	}
	switch name {
	case "message_start":
		out.id, out.model = ev.Message.ID, ev.Message.Model
	case "content_block_start":
		if ev.Index != len(out.blocks) {
			t.Fatalf("content_block_start index %d, want %d", ev.Index, len(out.blocks))
		}
		cb := ev.ContentBlock
		out.blocks = append(out.blocks, streamedBlock{Type: cb.Type, ID: cb.ID, Name: cb.Name})
	case "content_block_delta":
		if ev.Index != len(out.blocks)-1 {
			t.Fatalf("delta for block %d while block %d is open", ev.Index, len(out.blocks)-1)
		}
		b := &out.blocks[ev.Index]
		b.Deltas++
		switch ev.Delta.Type {
		case "text_delta":
			b.Text += ev.Delta.Text
		case "input_json_delta":
			b.Input += ev.Delta.PartialJSON
		default:
			t.Fatalf("unknown delta type %q", ev.Delta.Type)
		}
	case "message_delta":
		out.stopReason = ev.Delta.StopReason
	}
}

// eventOrder is the sequence of event names a response must follow, with
// each block's deltas collapsed into one "delta".
func eventOrder(events []string) []string {
	var out []string
	for _, e := range events {
		if e == "content_block_delta" && len(out) > 0 && out[len(out)-1] == "delta" {
			continue
		}
		if e == "content_block_delta" {
			e = "delta"
		}
		out = append(out, e)
	}
	return out
}

func blockEvents(n int) []string {
	out := []string{"message_start", "ping"}
	for i := 0; i < n; i++ {
		out = append(out, "content_block_start", "delta", "content_block_stop")
	}
	return append(out, "message_delta", "message_stop")
}

func TestHandlerServesTurnChosenByAssistantMessageCount(t *testing.T) {
	_, srv := startHandler(t, nil)
	session, err := LoadSession("testdata/three_turns.json", map[string]string{"dir": "/work dir"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		assistants int
		stop       string
		types      []string
		names      []string
	}{
		{0, "tool_use", []string{"text", "tool_use"}, []string{"", "Write"}},
		{1, "tool_use", []string{"tool_use", "tool_use"}, []string{"Bash", "Edit"}},
		{2, "end_turn", []string{"text"}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("assistants=%d", tt.assistants), func(t *testing.T) {
			resp := post(t, srv.URL(), conversation(t, true, tt.assistants))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q, want text/event-stream", ct)
			}
			got := readStream(t, resp.Body)

			if order := eventOrder(got.events); !reflect.DeepEqual(order, blockEvents(len(tt.types))) {
				t.Errorf("events %v, want %v", order, blockEvents(len(tt.types)))
			}
			if got.stopReason != tt.stop {
				t.Errorf("stop_reason %q, want %q", got.stopReason, tt.stop)
			}
			if got.model != "claude-test" {
				t.Errorf("model %q, want the request's model", got.model)
			}
			script := session.Turns[tt.assistants].Blocks
			for i, b := range got.blocks {
				if b.Type != tt.types[i] || b.Name != tt.names[i] {
					t.Errorf("block %d is %s %q, want %s %q", i, b.Type, b.Name, tt.types[i], tt.names[i])
				}
				if b.Type == BlockText && b.Text != script[i].Text {
					t.Errorf("block %d text %q, want %q", i, b.Text, script[i].Text)
				}
				if b.Type == BlockToolUse {
					if !json.Valid([]byte(b.Input)) || b.Input != string(script[i].Input) {
						t.Errorf("block %d input %s, want %s", i, b.Input, script[i].Input)
					}
					if !strings.HasPrefix(b.ID, "toolu_") {
						t.Errorf("block %d tool_use id %q lacks the toolu_ prefix", i, b.ID)
					}
				}
			}
		})
	}
}

func TestHandlerSplitsLongContentIntoSeveralDeltas(t *testing.T) {
	_, srv := startHandler(t, nil)
	got := readStream(t, post(t, srv.URL(), conversation(t, true, 0)).Body)

	for i, b := range got.blocks {
		if b.Deltas < 2 {
			t.Errorf("block %d (%s) came in %d delta(s), want several", i, b.Type, b.Deltas)
		}
	}
	var input map[string]string
	if err := json.Unmarshal([]byte(got.blocks[1].Input), &input); err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("ü-", 100); input["content"] != want {
		t.Errorf("reassembled content %q, want %q", input["content"], want)
	}
}

func TestHandlerGivesEveryResponseFreshIDs(t *testing.T) {
	_, srv := startHandler(t, nil)
	seen := map[string]bool{}
	// The same turn twice, then the next one: no id may repeat.
	for _, assistants := range []int{1, 1, 0} {
		got := readStream(t, post(t, srv.URL(), conversation(t, true, assistants)).Body)
		ids := []string{got.id}
		for _, b := range got.blocks {
			if b.Type == BlockToolUse {
				ids = append(ids, b.ID)
			}
		}
		for _, id := range ids {
			if id == "" || seen[id] {
				t.Errorf("id %q is empty or was used before", id)
			}
			seen[id] = true
		}
	}
}

func TestHandlerAnswersRequestsPastTheScriptWithClosingText(t *testing.T) {
	_, srv := startHandler(t, nil)
	got := readStream(t, post(t, srv.URL(), conversation(t, true, 3)).Body)
	if len(got.blocks) != 1 || got.blocks[0].Text != closingText || got.stopReason != "end_turn" {
		t.Errorf("got %+v stop %q, want one closing text block and end_turn", got.blocks, got.stopReason)
	}
}

func TestHandlerAnswersSideRequestsWithPlainMessage(t *testing.T) {
	h, srv := startHandler(t, nil)
	resp := post(t, srv.URL(), conversation(t, false, 1))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var msg struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		Role       string `json:"role"`
		Model      string `json:"model"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		Usage map[string]int `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != "message" || msg.Role != "assistant" || msg.Model != "claude-test" ||
		msg.StopReason != "end_turn" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Errorf("side response %+v is not a finished assistant message", msg)
	}
	if len(msg.Content) != 1 || msg.Content[0].Type != BlockText || msg.Content[0].Text == "" {
		t.Errorf("side response content %+v, want one text block", msg.Content)
	}
	if msg.Usage["input_tokens"] < 1 || msg.Usage["output_tokens"] < 1 {
		t.Errorf("usage %v, want token counts", msg.Usage)
	}
	reqs := h.Requests()
	if len(reqs) != 1 || reqs[0].Stream || reqs[0].Turn != 1 || reqs[0].Model != "claude-test" {
		t.Errorf("recorded %v, want one non-streamed request at turn 1", reqs)
	}
}

func TestHandlerAnswers404ToAnythingButPostMessages(t *testing.T) {
	h, srv := startHandler(t, nil)
	tests := []struct{ method, path string }{
		{http.MethodGet, MessagesPath},
		{http.MethodPost, "/v1/messages/count_tokens"},
		{http.MethodPost, "/v1/complete"},
		{http.MethodGet, "/"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, srv.URL()+tt.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: status %d, want 404", tt.method, tt.path, resp.StatusCode)
		}
	}
	for _, r := range h.Requests() {
		if r.Status != http.StatusNotFound || r.Turn != -1 {
			t.Errorf("recorded %v, want status 404 and turn -1", r)
		}
	}
	if n := len(h.Requests()); n != len(tests) {
		t.Errorf("recorded %d requests, want %d", n, len(tests))
	}
}

func TestHandlerRejectsBodyThatIsNotJSON(t *testing.T) {
	_, srv := startHandler(t, nil)
	resp := post(t, srv.URL(), []byte("not json"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
}

func TestHandlerRecordsToolResultsAndTheCallsTheyAnswer(t *testing.T) {
	h, srv := startHandler(t, nil)
	turn1 := readStream(t, post(t, srv.URL(), conversation(t, true, 1)).Body)
	bashID, editID := turn1.blocks[0].ID, turn1.blocks[1].ID

	// The CLI reports the Bash result as a string and the failed Edit as a
	// list of text blocks; it resends both with every later request.
	results := []any{
		map[string]any{"type": "tool_result", "tool_use_id": bashID, "content": "done",
			"is_error": false},
		map[string]any{"type": "tool_result", "tool_use_id": editID, "is_error": true,
			"content": []any{
				map[string]any{"type": "text", "text": "String to replace"},
				map[string]any{"type": "text", "text": "not found"}}},
		map[string]any{"type": "tool_result", "tool_use_id": "toolu_unknown", "content": "?"},
	}
	for i := 0; i < 2; i++ {
		resp := post(t, srv.URL(), conversation(t, false, 2, results...))
		io.Copy(io.Discard, resp.Body)
	}

	want := []ToolResult{
		{ToolUseID: bashID, Content: "done", Turn: 1, Name: "Bash"},
		{ToolUseID: editID, IsError: true, Content: "String to replace\nnot found",
			Turn: 1, Name: "Edit"},
		{ToolUseID: "toolu_unknown", Content: "?", Turn: -1},
	}
	if got := h.ToolResults(); !reflect.DeepEqual(got, want) {
		t.Errorf("ToolResults() =\n%+v\nwant\n%+v", got, want)
	}
	reqs := h.Requests()
	if len(reqs) != 3 {
		t.Fatalf("recorded %d requests, want 3", len(reqs))
	}
	if len(reqs[0].ToolResults) != 0 || !reflect.DeepEqual(reqs[2].ToolResults, want) {
		t.Errorf("per-request results %+v and %+v, want none then all three",
			reqs[0].ToolResults, reqs[2].ToolResults)
	}
}

func TestHandlerCallsOnTurnForScriptedTurnsOnly(t *testing.T) {
	var mu sync.Mutex
	var turns []int
	_, srv := startHandler(t, func(h *Handler) {
		h.OnTurn = func(turn int) {
			mu.Lock()
			defer mu.Unlock()
			turns = append(turns, turn)
		}
	})
	for _, req := range []struct {
		stream     bool
		assistants int
	}{{true, 0}, {false, 1}, {true, 1}, {true, 2}, {true, 3}} {
		resp := post(t, srv.URL(), conversation(t, req.stream, req.assistants))
		io.Copy(io.Discard, resp.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{0, 1, 2, 3}; !reflect.DeepEqual(turns, want) {
		t.Errorf("OnTurn saw %v, want %v (streamed requests only)", turns, want)
	}
}

func TestHandlerHoldsResponseUntilOnTurnReturns(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan int, 1)
	_, srv := startHandler(t, func(h *Handler) {
		h.OnTurn = func(turn int) {
			entered <- turn
			<-release
		}
	})

	type result struct {
		body []byte
		err  error
	}
	body := conversation(t, true, 2)
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post(srv.URL()+MessagesPath, "application/json", bytes.NewReader(body))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{body: b, err: err}
	}()

	if turn := <-entered; turn != 2 {
		t.Errorf("OnTurn(%d), want 2", turn)
	}
	select {
	case r := <-done:
		t.Fatalf("response finished while OnTurn was still running: %+v", r)
	default:
	}
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := readStream(t, bytes.NewReader(r.body))
	if len(got.blocks) != 1 || got.stopReason != "end_turn" {
		t.Errorf("after OnTurn returned got %+v, want turn 2", got)
	}
}

func TestHandlerStopsThinkingWhenClientGoesAway(t *testing.T) {
	arrived := make(chan struct{})
	var onTurnCalled atomic.Bool
	s, err := LoadSession("testdata/three_turns.json", map[string]string{"dir": "/d"})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Session: s, ThinkTime: time.Hour, OnTurn: func(int) { onTurnCalled.Store(true) }}
	srv, err := Listen("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		h.ServeHTTP(w, r)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+MessagesPath,
		bytes.NewReader(conversation(t, true, 0)))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error %v, want context.Canceled", err)
	}

	// Close waits for nothing, so poll for the handler's own return: it
	// records the request on its way out.
	deadline := time.Now().Add(10 * time.Second)
	for len(h.Requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(h.Requests()) != 1 {
		t.Fatal("handler still thinking after the client went away")
	}
	if onTurnCalled.Load() {
		t.Error("OnTurn ran for a request whose client had gone")
	}
}

func TestSplitKeepsRunesWholeAndLosesNothing(t *testing.T) {
	long := strings.Repeat("aé€😀", 40000) // 400 KB, beyond maxDelta
	tests := []string{"", "a", "é", "€x", "ab", "abcdefghij", "éééé", long}
	for _, s := range tests {
		pieces := split(s)
		if strings.Join(pieces, "") != s {
			t.Errorf("split(%.20q) loses text", s)
		}
		for _, p := range pieces {
			if !utf8.ValidString(p) || (p == "" && s != "") || len(p) > maxDelta+3 {
				t.Errorf("split(%.20q) made a bad piece %.20q (%d bytes)", s, p, len(p))
			}
		}
		if len(s) >= 3 && len([]rune(s)) >= 3 && len(pieces) < 2 {
			t.Errorf("split(%.20q) made %d piece(s), want several", s, len(pieces))
		}
	}
}

func TestListenRefusesAddressesOffLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "localhost:0", "192.0.2.1:0", "[::]:0"} {
		srv, err := Listen(addr, http.NotFoundHandler())
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Listen(%q) error %v, want ErrNotLoopback", addr, err)
		}
		if srv != nil {
			srv.Close()
		}
	}
}

func TestServerCloseIsIdempotent(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q, want http://127.0.0.1:PORT", srv.URL())
	}
	for i := 0; i < 2; i++ {
		if err := srv.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
}
